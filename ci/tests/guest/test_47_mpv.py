"""Issue 6: mpv (Debian 13's 0.40) on our decoder through FFmpeg's v4l2m2m
wrappers (`--hwdec=v4l2m2m-copy`). mpv's encoding mode (`--o`) writes every
decoded frame to a raw file, so no display is needed; the frames are compared
byte for byte with the ffmpeg CLI's software decode.

mpv falls back to software decoding without a word on the exit status when
the V4L2 decoder fails, so the test also requires its "Using hardware
decoding" line and the device the wrapper opened."""

import pytest

from ci.harness import report

from .decode import yuv420p_reference

STREAMS = ["h264-320x240", "hevc-320x240", "vp9-320x240",
           "h264-854x480", "vp9-854x480", "h264-1920x1080"]


@pytest.mark.parametrize("name", STREAMS)
def test_mpv_hwdec_v4l2m2m_bit_exact(target, running, manifest, name):
    stream = manifest[name]
    ref = f"/tmp/mpv-{name}.ref.yuv"
    out = f"/tmp/mpv-{name}.yuv"
    # the wrapper asks the driver for YU12, which mpv's raw output keeps
    yuv420p_reference(target, stream, ref)
    res = target.run(f"mpv --no-config --msg-level=all=v --hwdec=v4l2m2m-copy --no-audio "
                     f"--o={out} --of=rawvideo --ovc=rawvideo {stream['path']} 2>&1", timeout=900)
    assert res.rc == 0, res.stdout[-3000:]
    assert "Using hardware decoding (v4l2m2m-copy)" in res.stdout, res.stdout[-3000:]
    assert f"Using device {running.video}" in res.stdout, res.stdout[-3000:]
    assert "Using software decoding" not in res.stdout, res.stdout[-3000:]
    cmp = target.run(f"cmp {out} {ref} 2>&1; stat -c %s {out} {ref}")
    target.run(f"rm -f {out} {ref}")
    assert cmp.rc == 0, f"mpv's frames differ from the reference:\n{cmp.stdout}"
    report.figure(f"mpv --hwdec=v4l2m2m-copy {name} ({stream['total_frames']} frames)",
                  f"{stream['total_frames'] / res.seconds:.1f} fps (wall, incl. start-up)")
