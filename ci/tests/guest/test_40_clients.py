"""Real clients on our decoder: FFmpeg's *_v4l2m2m decoders (compared with the
reference, byte for byte) and GStreamer's v4l2 H.264 decoder."""

import pytest

from ci.harness import report
from ci.harness.streams import SPECS, V4L2M2M

from .decode import ffmpeg_fps, ffmpeg_v4l2m2m

# Not the resolution-change streams: FFmpeg's v4l2m2m wrapper cannot follow a
# change while it drains (7.1's CLI aborts: "Assertion pkt failed at
# src/fftools/ffmpeg_dec.c:758") and drops the last frame before a change it
# sees earlier (5.1); docs/clients.md names the code paths. GStreamer covers
# the change (test_45_players.py). 10-bit: the wrapper maps no V4L2 10-bit format.
FFMPEG_STREAMS = [s.name for s in SPECS if s.codec in V4L2M2M and s.bits == 8 and not s.width2]


@pytest.mark.parametrize("name", FFMPEG_STREAMS)
def test_ffmpeg_v4l2m2m_bit_exact(target, stack, running, manifest, name):
    stream = manifest[name]
    out = f"/tmp/ffmpeg-{name}.raw"
    res = target.run(ffmpeg_v4l2m2m(stream, out) + " 2>&1", timeout=900)
    assert res.rc == 0, f"ffmpeg {stream['v4l2m2m']} failed:\n{res.stdout[-3000:]}\ndaemon log:\n{stack.log_tail()}"
    cmp = target.run(f"cmp {out} {stream['ref']} 2>&1; stat -c %s {out} {stream['ref']}")
    target.run(f"rm -f {out}")
    assert cmp.rc == 0, f"{stream['v4l2m2m']} output differs from the reference:\n{cmp.stdout}"
    fps = ffmpeg_fps(res.stdout, stream["total_frames"])
    report.figure(f"ffmpeg {stream['v4l2m2m']} {name}", f"{fps:.1f} fps" if fps else "n/a")


def test_gstreamer_v4l2_h264(target, running, manifest):
    stream = manifest["h264-320x240"]
    # GStreamer names the element after the first decoder node it finds
    elem = target.run("gst-inspect-1.0 video4linux2 2>/dev/null | grep -Eo 'v4l2(video[0-9]+)?h264dec' | head -1")
    assert elem.stdout.strip(), "GStreamer found no V4L2 H.264 decoder:\n" + target.run(
        "gst-inspect-1.0 video4linux2 2>&1 | tail -30").stdout
    out = "/tmp/gst-h264.nv12"
    res = target.run(
        f"gst-launch-1.0 -q filesrc location={stream['path']} ! h264parse ! {elem.stdout.strip()} ! "
        f"video/x-raw,format=NV12 ! filesink location={out} 2>&1", timeout=600)
    assert res.rc == 0, res.stdout[-3000:]
    cmp = target.run(f"cmp {out} {stream['ref']} 2>&1")
    target.run(f"rm -f {out}")
    assert cmp.rc == 0, f"GStreamer output differs from the reference: {cmp.stdout}"
    report.figure("gstreamer v4l2 h264 h264-320x240", f"{stream['total_frames'] / res.seconds:.1f} fps (wall)")
