"""Throughput against FFmpeg in the same guest (daedalus-bench). A benchmark:
it prints figures and checks only that both sides decoded every frame."""

import json

import pytest

from ci.harness import report


@pytest.mark.parametrize("name", ["h264-1920x1080", "vp9-1920x1080", "av1-1920x1080"])
def test_bench_against_ffmpeg(target, stack, running, manifest, name):
    stream = manifest[name]
    plot = f"{target.out}/bench-{name}.png"
    res = target.run(
        f"mkdir -p {target.out} && {stack.bin('daedalus-bench')} --device {running.video} "
        f"--daemon-config {stack.config} -k 2 --json --plot {plot} {stream['path']} 2>/tmp/bench.err",
        timeout=1200)
    assert res.rc == 0, f"daedalus-bench failed:\n{res.stdout[-2000:]}\n" + target.run("tail -30 /tmp/bench.err").stdout
    results = json.loads(res.stdout[res.stdout.index("{"):])
    dev, ff = results["device"], results.get("ffmpeg")
    assert dev["error_frames"] == 0 and dev["frames"] == 2 * stream["total_frames"], dev
    line = f"{dev['fps']:.1f} fps via /dev/video"
    if ff:
        line += f", FFmpeg in-process {ff['fps']:.1f} fps, ratio {results['fps_ratio']:.2f}"
    report.figure(f"daedalus-bench {name}", line)
