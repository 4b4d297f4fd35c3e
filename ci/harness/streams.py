"""Test streams and their reference decodes, generated on first use with the
host's ffmpeg CLI and cached under ~/.cache/daedalus-v4l2/streams/<key>/.

Containers: H.264/HEVC as Annex B elementary streams, MPEG-2 as a video
elementary stream (.m2v), VP8/VP9/AV1 in IVF (what
daedalus-decode and FFmpeg's *_v4l2m2m both read). The seek streams have a
keyframe every `gop` frames and also come in Matroska (`mkv` in the manifest,
with `keyframes` and `rate`): a player seeks by the container's index and
timestamps, and the elementary stream is remuxed from it. Reference decodes are raw
NV12 (8-bit) or P010LE (10-bit) frames, one after the other, made with
`ffmpeg -i IN -fps_mode passthrough -pix_fmt nv12|p010le -f rawvideo REF`.
Never committed: the cache key is the hash of this file and the ffmpeg version.
"""

import fcntl
import hashlib
import json
import struct
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from .paths import STREAMS

SOURCE = "testsrc2=size={w}x{h}:rate={rate}"


@dataclass(frozen=True)
class Spec:
    name: str
    codec: str  # h264 | hevc | mpeg2 | vp8 | vp9 | av1
    width: int
    height: int
    frames: int
    bits: int = 8
    # resolution change: a second part at this size, keyframe at the change
    width2: int = 0
    height2: int = 0
    # a keyframe every `gop` frames (0: only the first frame) and a Matroska copy
    gop: int = 0


RATE = 30  # frames per second of every stream (SOURCE)


# 1080p streams stay short: the guest may run under TCG.
SPECS = [
    Spec("h264-320x240", "h264", 320, 240, 30),
    Spec("h264-854x480", "h264", 854, 480, 10),
    Spec("h264-1366x768", "h264", 1366, 768, 8),
    Spec("h264-1920x1080", "h264", 1920, 1080, 6),
    Spec("h264-reschange", "h264", 320, 240, 10, width2=640, height2=480),
    Spec("hevc-320x240", "hevc", 320, 240, 30),
    Spec("hevc-1920x1080", "hevc", 1920, 1080, 6),
    Spec("mpeg2-320x240", "mpeg2", 320, 240, 30),
    Spec("vp8-320x240", "vp8", 320, 240, 30),
    Spec("vp9-320x240", "vp9", 320, 240, 30),
    Spec("vp9-854x480", "vp9", 854, 480, 10),
    # zero-copy on both arches: FFmpeg's line size at 640 is 640 with x86-64's
    # and aarch64's STRIDE_ALIGN, and 480 rows are a multiple of 32
    Spec("vp9-640x480", "vp9", 640, 480, 10),
    Spec("vp9-1920x1080", "vp9", 1920, 1080, 6),
    Spec("vp9-10bit-320x240", "vp9", 320, 240, 20, bits=10),
    Spec("vp9-reschange", "vp9", 320, 240, 10, width2=640, height2=480),
    Spec("av1-320x240", "av1", 320, 240, 30),
    Spec("av1-1920x1080", "av1", 1920, 1080, 4),
    Spec("av1-10bit-320x240", "av1", 320, 240, 20, bits=10),
    # seeking: keyframes at 0, 15, 30 and 45 (test_45_players.py seeks to one)
    Spec("h264-seek", "h264", 320, 240, 60, gop=15),
    Spec("vp9-seek", "vp9", 320, 240, 60, gop=15),
]

EXT = {"h264": "h264", "hevc": "hevc", "mpeg2": "m2v", "vp8": "ivf", "vp9": "ivf", "av1": "ivf"}
# FFmpeg's V4L2 stateful decoders for the real-client tests (no AV1 wrapper in 7.1).
V4L2M2M = {"h264": "h264_v4l2m2m", "hevc": "hevc_v4l2m2m", "mpeg2": "mpeg2_v4l2m2m", "vp9": "vp9_v4l2m2m"}


def _encoder_args(spec: Spec) -> list[str]:
    """The encoder's options (no output format: see _encode)."""
    pix = "yuv420p10le" if spec.bits == 10 else "yuv420p"
    gop = str(spec.gop or spec.frames)
    # forced keyframes exactly every `gop` frames, none elsewhere (no scene cuts)
    keys = ["-force_key_frames", f"expr:eq(mod(n,{gop}),0)", "-keyint_min", gop] if spec.gop else []
    if spec.codec == "h264":
        # b-adapt=0: really three B-frames between references, not "up to"
        x264 = "b-adapt=0:log-level=error" + (":scenecut=0" if spec.gop else "")
        return ["-c:v", "libx264", "-preset", "veryfast", "-bf", "3", "-g", gop, *keys,
                "-x264-params", x264, "-pix_fmt", pix]
    if spec.codec == "hevc":
        return ["-c:v", "libx265", "-preset", "veryfast", "-pix_fmt", pix,
                "-x265-params", f"bframes=3:b-adapt=0:keyint={gop}:log-level=error"]
    if spec.codec == "mpeg2":
        # two B-frames between references, as broadcast MPEG-2 has
        return ["-c:v", "mpeg2video", "-bf", "2", "-b:v", "1M", "-g", gop, *keys, "-pix_fmt", pix]
    if spec.codec == "vp8":
        return ["-c:v", "libvpx", "-deadline", "good", "-cpu-used", "8", "-b:v", "800k",
                "-g", gop, *keys, "-pix_fmt", pix]
    if spec.codec == "vp9":
        args = ["-c:v", "libvpx-vp9", "-deadline", "good", "-cpu-used", "8", "-b:v", "800k",
                "-g", gop, *keys, "-pix_fmt", pix]
        if spec.bits == 10:
            args += ["-profile:v", "2"]
        return args
    if spec.codec == "av1":
        return ["-c:v", "libaom-av1", "-usage", "good", "-cpu-used", "8", "-b:v", "500k",
                "-g", gop, "-pix_fmt", pix]
    raise ValueError(spec.codec)


# the elementary-stream formats daedalus-decode and FFmpeg's wrappers read
ES_FORMAT = {"h264": ["-bsf:v", "h264_mp4toannexb", "-f", "h264"], "hevc": ["-f", "hevc"],
             "mpeg2": ["-f", "mpeg2video"],
             "vp8": ["-f", "ivf"], "vp9": ["-f", "ivf"], "av1": ["-f", "ivf"]}


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def _encode(spec: Spec, width: int, height: int, frames: int, out: Path) -> None:
    fmt = ["-f", "matroska"] if out.suffix == ".mkv" else ES_FORMAT[spec.codec]
    _ffmpeg("-f", "lavfi", "-i", SOURCE.format(w=width, h=height, rate=RATE), "-frames:v", str(frames),
            *_encoder_args(spec), *fmt, str(out))


def _remux_es(spec: Spec, mkv: Path, out: Path) -> None:
    """The elementary stream of a Matroska file, the same packets."""
    _ffmpeg("-i", str(mkv), "-map", "0:v", "-c", "copy", *ES_FORMAT[spec.codec], str(out))


def _keyframes(stream: Path) -> list[int]:
    """Indices (display order) of the keyframes, as ffprobe sees them."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "frame=key_frame", "-of", "csv=p=0", str(stream)],
                         check=True, capture_output=True, text=True).stdout.split()
    return [i for i, k in enumerate(out) if k.strip(",") == "1"]


def _reference(stream: Path, bits: int, out: Path) -> None:
    _ffmpeg("-i", str(stream), "-fps_mode", "passthrough",
            "-pix_fmt", "p010le" if bits == 10 else "nv12", "-f", "rawvideo", str(out))


def _ivf_frames(data: bytes) -> list[bytes]:
    hdr_len = struct.unpack_from("<H", data, 6)[0]
    pos, frames = hdr_len, []
    while pos + 12 <= len(data):
        size = struct.unpack_from("<I", data, pos)[0]
        frames.append(data[pos:pos + 12 + size])
        pos += 12 + size
    return frames


def _concat_ivf(a: Path, b: Path, out: Path) -> None:
    """One IVF from two: the header (first size) of `a`, then every frame of both,
    timestamps of `b` shifted to follow `a`."""
    da, db = a.read_bytes(), b.read_bytes()
    fa, fb = _ivf_frames(da), _ivf_frames(db)
    header = bytearray(da[:struct.unpack_from("<H", da, 6)[0]])
    struct.pack_into("<I", header, 24, len(fa) + len(fb))
    body = list(fa)
    for i, f in enumerate(fb):
        f = bytearray(f)
        struct.pack_into("<Q", f, 4, len(fa) + i)
        body.append(bytes(f))
    out.write_bytes(bytes(header) + b"".join(body))


def _frame_bytes(w: int, h: int, bits: int) -> int:
    per = 2 if bits == 10 else 1
    return w * h * per + 2 * ((w + 1) // 2) * ((h + 1) // 2) * per


def _make(spec: Spec, d: Path) -> dict:
    stream = d / f"{spec.name}.{EXT[spec.codec]}"
    ref = d / f"{spec.name}.{'p010' if spec.bits == 10 else 'nv12'}"
    parts = []
    extra = {}
    if spec.width2:
        a, b = d / f"{spec.name}.part1.{EXT[spec.codec]}", d / f"{spec.name}.part2.{EXT[spec.codec]}"
        _encode(spec, spec.width, spec.height, spec.frames, a)
        _encode(spec, spec.width2, spec.height2, spec.frames, b)
        if spec.codec == "vp9":
            _concat_ivf(a, b, stream)
        else:
            stream.write_bytes(a.read_bytes() + b.read_bytes())
        # the parts are decoded apart: one reference, two sizes back to back
        ra, rb = a.with_suffix(".nv12"), b.with_suffix(".nv12")
        _reference(a, spec.bits, ra)
        _reference(b, spec.bits, rb)
        ref.write_bytes(ra.read_bytes() + rb.read_bytes())
        parts = [{"width": spec.width, "height": spec.height, "frames": spec.frames, "ref": str(ra)},
                 {"width": spec.width2, "height": spec.height2, "frames": spec.frames, "ref": str(rb)}]
        frames = 2 * spec.frames
    elif spec.gop:
        mkv = d / f"{spec.name}.mkv"
        _encode(spec, spec.width, spec.height, spec.frames, mkv)
        _remux_es(spec, mkv, stream)
        _reference(mkv, spec.bits, ref)
        frames = spec.frames
        extra = {"mkv": str(mkv), "keyframes": _keyframes(mkv)}
        if extra["keyframes"] != list(range(0, frames, spec.gop)):
            raise RuntimeError(f"{spec.name}: keyframes at {extra['keyframes']}, expected every {spec.gop}")
    else:
        _encode(spec, spec.width, spec.height, spec.frames, stream)
        _reference(stream, spec.bits, ref)
        frames = spec.frames
    expected = sum(_frame_bytes(p["width"], p["height"], spec.bits) * p["frames"] for p in parts) if parts \
        else _frame_bytes(spec.width, spec.height, spec.bits) * frames
    if ref.stat().st_size != expected:
        raise RuntimeError(f"{spec.name}: reference has {ref.stat().st_size} bytes, expected {expected}")
    entry = asdict(spec)
    entry.update(path=str(stream), ref=str(ref), ref_pix_fmt="p010le" if spec.bits == 10 else "nv12",
                 total_frames=frames, parts=parts, v4l2m2m=V4L2M2M.get(spec.codec, ""), rate=RATE, **extra)
    return entry


def _key() -> str:
    ver = subprocess.run(["ffmpeg", "-version"], check=True, capture_output=True, text=True).stdout.splitlines()[0]
    return hashlib.sha256(Path(__file__).read_bytes() + ver.encode()).hexdigest()[:16]


def streams(progress: bool = True) -> list[dict]:
    """The manifest of all test streams (generating them on first use)."""
    d = STREAMS / _key()
    manifest = d / "manifest.json"
    if manifest.exists():
        return json.loads(manifest.read_text())
    d.mkdir(parents=True, exist_ok=True)
    # two callers (prepare.sh and a test run, or two test runs) would encode
    # into the same files: the second waits, then finds the manifest
    with open(d / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if manifest.exists():
            return json.loads(manifest.read_text())
        return _make_all(d, manifest, progress)


def _make_all(d: Path, manifest: Path, progress: bool) -> list[dict]:
    entries = []
    for i, spec in enumerate(SPECS, 1):
        if progress:
            print(f"streams: [{i}/{len(SPECS)}] encoding {spec.name} ({spec.frames} frames) + reference",
                  file=sys.stderr, flush=True)
        entries.append(_make(spec, d))
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps(entries, indent=1))
    tmp.rename(manifest)
    return entries


if __name__ == "__main__":
    for e in streams():
        print(f"{e['name']:22} {e['total_frames']:3} frames  {e['path']}")
