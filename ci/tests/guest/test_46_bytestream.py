"""Issue 6: plain `v4l2-ctl --stream-from` of an Annex-B file. v4l2-ctl fills
each OUTPUT buffer with the next sizeimage bytes of the file (the kernel's
OUTPUT sizeimage is at least 2 MiB, so these files arrive in one buffer);
the daemon's byte-stream parser cuts them into access units, and the kernel
advertises V4L2_FMT_FLAG_CONTINUOUS_BYTESTREAM for H.264 and HEVC. Output
compared byte for byte with the ffmpeg CLI's NV12 decode (widths whose rows
need no padding, so v4l2-ctl's raw CAPTURE file is the tight reference)."""

import re

import pytest

FOURCC = {"h264": "H264", "hevc": "HEVC"}


def test_continuous_bytestream_is_advertised(target, running):
    res = target.run(f"v4l2-ctl -d {running.video} --list-formats-out", check=True)
    flags = {m.group(1): m.group(2) for m in re.finditer(r"'(\w+)' \(([^)]*)\)", res.stdout)}
    assert "continuous-bytestream" in flags.get("H264", ""), res.stdout
    assert "continuous-bytestream" in flags.get("HEVC", ""), res.stdout
    # frames without start codes: one frame per buffer stays the rule
    assert "continuous-bytestream" not in flags.get("VP90", ""), res.stdout


@pytest.mark.parametrize("name", ["h264-320x240", "hevc-320x240", "h264-1920x1080"])
def test_v4l2ctl_plain_stream_from_bit_exact(target, running, manifest, name):
    stream = manifest[name]
    out = f"/tmp/v4l2ctl-plain-{name}.nv12"
    res = target.run(
        f"v4l2-ctl -d {running.video} --set-fmt-video-out=pixelformat={FOURCC[stream['codec']]} "
        f"--stream-mmap --stream-out-mmap --stream-from={stream['path']} --stream-to={out} 2>&1",
        timeout=600)
    assert res.rc == 0, res.stdout[-3000:]
    cmp = target.run(f"cmp {out} {stream['ref']} 2>&1; stat -c %s {out} {stream['ref']}")
    target.run(f"rm -f {out}")
    assert cmp.rc == 0, f"v4l2-ctl output differs from the reference:\n{cmp.stdout}"
