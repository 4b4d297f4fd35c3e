"""How the guest tests drive the clients: the one place that knows their
command lines (daedalus-decode from tools/, FFmpeg, GStreamer)."""

import re

from ci.harness.stack import Stack, parse_fps


def daedalus_decode(stack: Stack, device: str, stream: dict, out: str | None = None,
                    extra: str = "") -> str:
    """Command decoding `stream` on `device` and verifying it byte-exact against its reference."""
    args = f"--device {device} --verify {stream['ref']}"
    if out:
        args += f" --output {out}"
    return f"{stack.bin('daedalus-decode')} {args} {extra} {stream['path']}"


def cli_reference(target, stream: dict, ref: str, pix_fmt: str) -> None:
    """Writes the target's ffmpeg CLI decode of `stream` as raw `pix_fmt` frames to `ref`."""
    made = target.run(f"ffmpeg -nostdin -loglevel error -i {stream['path']} -fps_mode passthrough "
                      f"-pix_fmt {pix_fmt} -f rawvideo -y {ref}", timeout=600)
    assert made.rc == 0, made.stdout


def yuv420p_reference(target, stream: dict, ref: str) -> None:
    """The planar YUV420 reference (the cached ones are NV12/P010; YU12 clients
    compare with this)."""
    cli_reference(target, stream, ref, "yuv420p")


def ffmpeg_v4l2m2m(stream: dict, out: str) -> str:
    # -noautoscale: frames keep their decoded size across a resolution change
    # (FFmpeg would otherwise scale them to the first size).
    # -benchmark's "bench: ... rtime=" line is an info-level message
    return (f"ffmpeg -nostdin -hide_banner -nostats -loglevel info -benchmark -c:v {stream['v4l2m2m']} "
            f"-i {stream['path']} -fps_mode passthrough -noautoscale -pix_fmt {stream['ref_pix_fmt']} "
            f"-f rawvideo -y {out}")


def ffmpeg_fps(output: str, frames: int) -> float | None:
    m = re.search(r"rtime=([0-9.]+)s", output)
    return frames / float(m.group(1)) if m and float(m.group(1)) > 0 else None


__all__ = ["daedalus_decode", "ffmpeg_v4l2m2m", "ffmpeg_fps", "parse_fps", "yuv420p_reference"]
