"""Issue 6: the players people run, beyond FFmpeg's *_v4l2m2m (test_40):
GStreamer's v4l2 decoders behind parsebin for every codec it wraps, with
sizes that are not multiples of 16 (the visible rectangle must survive), a
resolution change and a seek, each with GStreamer 1.26 (Debian 13) and 1.22
(Debian 12, Raspberry Pi OS bookworm; see userlands.py); v4l2-ctl's
stateful streaming; v4l2-compliance's streaming tests fed with real
bitstreams. Everything is compared with the ffmpeg CLI's decode."""

import json
import re
from pathlib import Path

import pytest

from ci.harness import report

from . import userlands

HELPERS = Path(__file__).parent / "helpers"
# GStreamer 1.26 wraps these stateful V4L2 decoders (no AV1 wrapper in v4l2 plugin)
GST_ELEMENTS = {"h264": "h264dec", "hevc": "h265dec", "mpeg2": "mpeg2dec", "vp9": "vp9dec"}
GST_STREAMS = ["h264-320x240", "h264-854x480", "h264-1366x768", "h264-1920x1080",
               "hevc-320x240", "mpeg2-320x240", "vp9-320x240", "vp9-854x480"]
# v4l2-compliance streams the node's default coded format and has no option
# to pick another: it reopens the node before each streaming test, -f is "not
# supported for decoder devices", and --stream-from's <pixelformat>= only
# picks the file for the current format. The module's default is H.264 when
# the daemon offers it, else the first format the daemon announces: a daemon
# configured for one codec makes v4l2-compliance stream that one.
COMPLIANCE_STREAMS = {"H264": "h264-320x240", "HEVC": "hevc-320x240", "MPG2": "mpeg2-320x240",
                      "VP80": "vp8-320x240", "VP90": "vp9-320x240"}


@pytest.fixture(scope="session", params=[userlands.TRIXIE, userlands.BOOKWORM], ids=lambda u: u.name)
def gst(request, target):
    """The GStreamer the test runs: 1.26 (the guest's own) or 1.22 (the bookworm root)."""
    return userlands.enter(target, request.param)


def _gst_element(target, gst, codec: str) -> str:
    """GStreamer names the element after the node when there are several decoders."""
    suffix = GST_ELEMENTS[codec]
    res = target.run(gst.cmd(f"gst-inspect-1.0 video4linux2 2>/dev/null") +
                     f" | grep -Eo 'v4l2(video[0-9]+)?{suffix}' | head -1")
    elem = res.stdout.strip()
    assert elem, f"GStreamer registered no V4L2 {codec} decoder:\n" + target.run(
        gst.cmd("gst-inspect-1.0 video4linux2 2>&1") + " | tail -30").stdout
    return elem


def _hdr_file(target, stream: dict) -> str:
    out = f"/tmp/{stream['name']}.hdr"
    res = target.run(f"python3 {HELPERS}/to_v4l2ctl_hdr.py {stream['path']} {out} {stream['codec']}")
    assert res.rc == 0, res.stdout
    return out


def _gst_decode_nv12(target, gst, path: str, elem: str, out: str):
    """filesrc ! parsebin ! the V4L2 decoder ! NV12 into `out`; must succeed."""
    res = target.run(gst.cmd(
        f"gst-launch-1.0 -q filesrc location={path} ! parsebin ! {elem} ! "
        f"video/x-raw,format=NV12 ! filesink location={out} 2>&1"), timeout=900)
    assert res.rc == 0, res.stdout[-3000:]
    return res


@pytest.mark.parametrize("name", GST_STREAMS)
def test_gstreamer_parsebin_bit_exact(target, running, manifest, gst, name):
    stream = manifest[name]
    elem = _gst_element(target, gst, stream["codec"])
    out = f"/tmp/gst-{name}.nv12"
    res = _gst_decode_nv12(target, gst, stream["path"], elem, out)
    # filesink writes GStreamer's own padded rows (stride rounded to 4): compare visible pixels
    cmp = target.run(f"python3 {HELPERS}/compare_padded.py {out} {stream['ref']} "
                     f"{stream['width']} {stream['height']} {stream['total_frames']}")
    target.run(f"rm -f {out}")
    assert cmp.rc == 0, f"GStreamer {elem} output differs from the reference:\n{cmp.stdout}"
    report.figure(f"gstreamer {gst.name} {elem} {name}", f"{stream['total_frames'] / res.seconds:.1f} fps (wall)")


@pytest.mark.parametrize("name", ["h264-reschange", "vp9-reschange"])
def test_gstreamer_resolution_change(target, running, manifest, gst, name):
    """A stream whose size changes at a keyframe: both parts byte-exact (the
    sizes are multiples of 64 wide, so GStreamer's buffers carry no padding)."""
    stream = manifest[name]
    elem = _gst_element(target, gst, stream["codec"])
    out = f"/tmp/gst-{name}.nv12"
    res = _gst_decode_nv12(target, gst, stream["path"], elem, out)
    cmp = target.run(f"cmp {out} {stream['ref']} 2>&1; stat -c %s {out} {stream['ref']}")
    target.run(f"rm -f {out}")
    assert cmp.rc == 0, f"GStreamer {elem} output differs from the reference:\n{cmp.stdout}"


# (frames played first, keyframe to seek to): forward past a keyframe, and
# back to one the decoder already decoded (its references must be flushed)
SEEKS = {"forward": (10, 30), "backward": (40, 15)}


@pytest.mark.parametrize("direction", sorted(SEEKS))
@pytest.mark.parametrize("name", ["h264-seek", "vp9-seek"])
def test_gstreamer_seek(target, running, manifest, gst, name, direction):
    """Plays the start of a Matroska file, seeks (FLUSH | KEY_UNIT) to a
    keyframe and plays to the end: every frame after the seek, by timestamp,
    byte-exact, none lost, none twice, none stale (helpers/gst_seek.py)."""
    stream = manifest[name]
    before, seek_to = SEEKS[direction]
    assert seek_to in stream["keyframes"], f"{name}: no keyframe at {seek_to}: {stream['keyframes']}"
    elem = _gst_element(target, gst, stream["codec"])
    res = target.run(gst.cmd(
        f"python3 {HELPERS}/gst_seek.py --decoder {elem} --input {stream['mkv']} --ref {stream['ref']} "
        f"--width {stream['width']} --height {stream['height']} --rate {stream['rate']} "
        f"--before {before} --seek-to {seek_to} --timeout 120 2>&1"), timeout=900)
    lines = [line for line in res.stdout.splitlines() if line.startswith("{")]
    assert lines, f"gst_seek.py printed no result ({res.rc}):\n{res.stdout[-3000:]}"
    seen = json.loads(lines[-1])
    assert res.rc == 0, (f"{gst.name} {elem} seek {before} -> {seek_to}: rc {res.rc}, error {seen.get('error')}\n"
                         f"before the seek: {seen['before']}\nafter it: {seen['after']}\n"
                         f"not byte-exact: {seen['mismatched']}\n{res.stdout[-2000:]}")
    report.figure(f"gstreamer {gst.name} {elem} seek {name} {direction}",
                  f"{len(seen['before'])} + {len(seen['after'])} frames in {res.seconds:.1f} s")


@pytest.mark.parametrize("name", ["vp9-320x240", "h264-320x240"])
def test_v4l2ctl_stream_bit_exact(target, running, manifest, name):
    stream = manifest[name]
    hdr = _hdr_file(target, stream)
    fourcc = {"vp9": "VP90", "h264": "H264"}[stream["codec"]]
    out = f"/tmp/v4l2ctl-{name}.nv12"
    res = target.run(
        f"v4l2-ctl -d {running.video} --set-fmt-video-out=pixelformat={fourcc} "
        f"--stream-mmap --stream-out-mmap --stream-from-hdr={hdr} --stream-to={out} 2>&1", timeout=600)
    assert res.rc == 0, res.stdout[-3000:]
    cmp = target.run(f"cmp {out} {stream['ref']} 2>&1; stat -c %s {out} {stream['ref']}")
    target.run(f"rm -f {out} {hdr}")
    assert cmp.rc == 0, f"v4l2-ctl output differs from the reference:\n{cmp.stdout}"


@pytest.mark.parametrize("fourcc", sorted(COMPLIANCE_STREAMS))
def test_compliance_streaming(target, stack, compliance_running, manifest, fourcc):
    stream = manifest[COMPLIANCE_STREAMS[fourcc]]
    if fourcc != "H264":
        # compliance_running restores the daemon's usual config afterwards
        config = f"/tmp/daedalus-v4l2d.compliance-{stream['codec']}.toml"
        target.run(f"sed 's/^codecs = .*/codecs = [\"{stream['codec']}\"]/' {stack.config} > {config} && "
                   f"grep -qx 'codecs = \\[\"{stream['codec']}\"\\]' {config}", check=True)
        stack.stop_daemon()
        stack.config = config
        stack.start_daemon()
    default = target.run(f"v4l2-ctl -d {compliance_running.video} --get-fmt-video-out", check=True)
    assert f"'{fourcc}'" in default.stdout, f"the node's default coded format is not {fourcc}:\n{default.stdout}"
    hdr = _hdr_file(target, stream)
    res = target.run(
        f"v4l2-compliance -C never -d {compliance_running.video} -s --stream-from-hdr={hdr} 2>&1", timeout=900)
    target.run(f"rm -f {hdr}")
    m = re.search(r"Total for .*: (\d+), Succeeded: (\d+), Failed: (\d+), Warnings: (\d+)", res.stdout)
    assert m, res.stdout[-4000:]
    report.figure(f"v4l2-compliance -s {fourcc}", f"{m.group(1)} tests, {m.group(3)} failed, {m.group(4)} warnings")
    fails = "\n".join(line for line in res.stdout.splitlines() if "fail:" in line)
    assert int(m.group(3)) == 0 and res.rc == 0, f"{fails}\n---\n{res.stdout[-3000:]}"
