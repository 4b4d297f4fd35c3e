#!/usr/bin/env python3
"""Seeks in a real GStreamer pipeline and checks every frame it gets.

    filesrc ! parsebin ! DECODER ! video/x-raw,format=NV12 ! appsink

plays the first --before frames of a Matroska file, does a flushing
keyframe seek (FLUSH | KEY_UNIT) to frame --seek-to (a keyframe), then pulls
frames until end of stream. Each frame's index is its timestamp times the
frame rate; its visible NV12 pixels must equal that frame of the reference
decode (`ffmpeg -i IN -fps_mode passthrough -pix_fmt nv12 -f rawvideo`).
Passes only if the frames before the seek are 0..before-1 and those after it
are seek_to..frames-1, each exactly once and in order (nothing lost, nothing
duplicated, no stale frame from before the seek), and the end of stream comes
within --timeout seconds of the last frame (no hang).

Prints one JSON line with what it saw; exit status 0 = pass, 1 = fail, 2 = a
pipeline error. Runs with GStreamer 1.22 and 1.26 (python3-gi).
"""

import argparse
import json
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import GLib, Gst, GstApp, GstVideo  # noqa: E402,F401  (after require_version; GstApp: appsink methods)

NS = 1_000_000_000


class Reference:
    """The reference decode: tight NV12 frames one after the other."""

    def __init__(self, path: str, width: int, height: int):
        self.width, self.height = width, height
        self.frame_size = width * height + 2 * ((width + 1) // 2) * ((height + 1) // 2)
        with open(path, "rb") as f:
            self.data = f.read()
        self.frames = len(self.data) // self.frame_size

    def frame(self, index: int) -> bytes:
        return self.data[index * self.frame_size:(index + 1) * self.frame_size]


def visible_nv12(sample: Gst.Sample, width: int, height: int) -> bytes:
    """The visible pixels of an NV12 sample, tight (planes may be padded:
    the decoder's strides come in a GstVideoMeta, else from the caps)."""
    buf = sample.get_buffer()
    meta = GstVideo.buffer_get_video_meta(buf)
    if meta is not None:
        strides, offsets = list(meta.stride), list(meta.offset)
    else:
        info = GstVideo.VideoInfo.new_from_caps(sample.get_caps())
        strides, offsets = list(info.stride), list(info.offset)
    ok, mapped = buf.map(Gst.MapFlags.READ)
    if not ok:
        raise RuntimeError("cannot map a decoded buffer")
    try:
        data = bytes(mapped.data)
    finally:
        buf.unmap(mapped)
    chroma_w, chroma_h = 2 * ((width + 1) // 2), (height + 1) // 2
    rows = [data[offsets[0] + r * strides[0]:offsets[0] + r * strides[0] + width] for r in range(height)]
    rows += [data[offsets[1] + r * strides[1]:offsets[1] + r * strides[1] + chroma_w] for r in range(chroma_h)]
    return b"".join(rows)


class Player:
    def __init__(self, args):
        self.args = args
        desc = (f"filesrc location={args.input} ! parsebin ! {args.decoder} ! "
                f"video/x-raw,format=NV12 ! appsink name=sink sync=false max-buffers=2")
        self.pipeline = Gst.parse_launch(desc)
        self.sink = self.pipeline.get_by_name("sink")
        self.bus = self.pipeline.get_bus()

    def check_bus(self) -> None:
        """Raises on an error message (the decoder or demuxer gave up)."""
        while True:
            msg = self.bus.pop_filtered(Gst.MessageType.ERROR)
            if msg is None:
                return
            err, dbg = msg.parse_error()
            raise RuntimeError(f"pipeline error from {msg.src.get_name()}: {err.message} ({dbg})")

    def pull(self) -> Gst.Sample | None:
        """The next frame; None at end of stream; raises after --timeout without either."""
        sample = self.sink.try_pull_sample(int(self.args.timeout * NS))
        self.check_bus()
        if sample is None and not self.sink.is_eos():
            raise TimeoutError(f"no frame and no end of stream within {self.args.timeout} s (hang)")
        return sample


def index_of(sample: Gst.Sample, rate: int) -> int:
    pts = sample.get_buffer().pts
    if pts == Gst.CLOCK_TIME_NONE:
        raise RuntimeError("a decoded frame without a timestamp")
    return round(pts * rate / NS)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--decoder", required=True, help="the decoder element, e.g. v4l2h264dec")
    ap.add_argument("--input", required=True, help="a Matroska file")
    ap.add_argument("--ref", required=True)
    ap.add_argument("--width", type=int, required=True)
    ap.add_argument("--height", type=int, required=True)
    ap.add_argument("--rate", type=int, required=True, help="frames per second")
    ap.add_argument("--before", type=int, required=True, help="frames to play before the seek")
    ap.add_argument("--seek-to", type=int, required=True, help="index of the keyframe to seek to")
    ap.add_argument("--timeout", type=float, default=60, help="seconds to wait for any one frame")
    args = ap.parse_args()

    Gst.init(None)
    ref = Reference(args.ref, args.width, args.height)
    player = None
    seen = {"gstreamer": Gst.version_string(), "decoder": args.decoder,
            "before": [], "after": [], "mismatched": [], "seek_ok": None}
    status = 0
    try:
        player = Player(args)
        if player.pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            raise RuntimeError("the pipeline refused to play")
        while len(seen["before"]) < args.before:
            sample = player.pull()
            if sample is None:
                raise RuntimeError("end of stream before the seek")
            collect(sample, ref, args, seen, "before")
        # the seek itself: flushes the decoder (V4L2: OUTPUT/CAPTURE STREAMOFF/STREAMON)
        seen["seek_ok"] = bool(player.pipeline.seek_simple(
            Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT, args.seek_to * NS // args.rate))
        if not seen["seek_ok"]:
            raise RuntimeError("the pipeline refused the seek")
        while (sample := player.pull()) is not None:
            collect(sample, ref, args, seen, "after")
    except (RuntimeError, TimeoutError, GLib.Error) as e:
        seen["error"] = str(e)
        status = 2
    finally:
        if player is not None:
            player.pipeline.set_state(Gst.State.NULL)
    want_before = list(range(args.before))
    want_after = list(range(args.seek_to, ref.frames))
    if status == 0 and (seen["before"] != want_before or seen["after"] != want_after or seen["mismatched"]):
        status = 1
    seen["expected_before"], seen["expected_after"] = want_before, want_after
    print(json.dumps(seen))
    return status


def collect(sample: Gst.Sample, ref: Reference, args, seen: dict, phase: str) -> None:
    caps = sample.get_caps().get_structure(0)
    size = (caps.get_value("width"), caps.get_value("height"))
    if size != (args.width, args.height):
        raise RuntimeError(f"decoded size {size}, expected {(args.width, args.height)}")
    index = index_of(sample, args.rate)
    seen[phase].append(index)
    if not 0 <= index < ref.frames or visible_nv12(sample, args.width, args.height) != ref.frame(index):
        seen["mismatched"].append(index)


if __name__ == "__main__":
    sys.exit(main())
