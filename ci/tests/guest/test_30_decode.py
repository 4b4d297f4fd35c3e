"""Bit-exact decodes through /dev/videoN with the project's own client, for
every test stream (codecs, 8/10-bit, 320x240 to 1080p, crop sizes, a
resolution change), against `ffmpeg -pix_fmt nv12|p010le` references."""

import re
import time

import pytest

from ci.harness import report
from ci.harness.streams import SPECS

from .decode import daedalus_decode, parse_fps, yuv420p_reference


@pytest.mark.parametrize("name", [s.name for s in SPECS])
def test_decode_bit_exact(target, stack, running, manifest, name):
    stream = manifest[name]
    res = target.run(daedalus_decode(stack, running.video, stream) + " 2>&1", timeout=900)
    assert res.rc == 0, f"daedalus-decode failed ({res.rc}):\n{res.stdout[-3000:]}\ndaemon log:\n{stack.log_tail()}"
    fps = parse_fps(res.stdout)
    report.figure(f"daedalus-decode {name} ({stream['total_frames']} frames)",
                  f"{fps:.1f} fps" if fps else f"{stream['total_frames'] / res.seconds:.1f} fps (wall)")


# Zero-copy YUV420 (daemon/README.md): FFmpeg decodes into the CAPTURE buffers
# when its line size and row padding fit the kernel's YUV420 layout. VP9
# 640x480 fits with x86-64's and aarch64's STRIDE_ALIGN alike; VP9 854x480
# only on x86-64 (896-byte rows; aarch64 FFmpeg wants 864 and is copied);
# H.264 needs two rows more than the buffer has and is always copied. All
# bit-exact against `ffmpeg -pix_fmt yuv420p`.
@pytest.mark.parametrize("name,zero_copy", [("vp9-640x480", "always"), ("vp9-854x480", "x86_64"),
                                            ("h264-854x480", "never")])
def test_decode_yuv420_zero_copy(target, stack, running, manifest, name, zero_copy):
    stream = manifest[name]
    ref = f"/tmp/zero-copy-{name}.yuv420p"
    yuv420p_reference(target, stream, ref)
    log_lines = int(target.run(f"wc -l < {stack.daemon_log}").stdout.strip() or 0)
    cmd = daedalus_decode(stack, running.video, dict(stream, ref=ref),
                          extra="--format yuv420 --extra-capture-buffers 12")
    res = target.run(cmd + " 2>&1", timeout=900)
    assert res.rc == 0, f"daedalus-decode failed ({res.rc}):\n{res.stdout[-3000:]}\ndaemon log:\n{stack.log_tail()}"
    # the daemon logs the summary when the session closes, just after the client exits
    for _ in range(50):
        since = target.run(f"tail -n +{log_lines + 1} {stack.daemon_log}").stdout
        summaries = [line for line in since.splitlines() if " zero-copy, " in line]
        if summaries:
            break
        time.sleep(0.1)
    assert summaries, f"no session summary in the daemon log:\n{stack.log_tail()}"
    m = re.search(r"(\d+) frames, (\d+) zero-copy, (\d+) bytes copied", summaries[-1])
    assert m, summaries[-1]
    frames, zc, copied = (int(g) for g in m.groups())
    assert frames == stream["total_frames"], summaries[-1]
    frame_bytes = stream["width"] * stream["height"] * 3 // 2
    arch = target.run("uname -m").stdout.strip()
    if zero_copy == "always" or zero_copy == arch:
        assert zc > 0 and copied == (frames - zc) * frame_bytes, summaries[-1]
    elif zero_copy == "never":
        assert zc == 0, summaries[-1]
    report.figure(f"zero-copy YUV420 {name} ({arch})",
                  f"{zc}/{frames} frames zero-copy, {copied // max(frames, 1)} bytes copied per frame")
