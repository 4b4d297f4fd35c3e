"""Bit-exact decodes through /dev/videoN with the project's own client, for
every test stream (codecs, 8/10-bit, 320x240 to 1080p, crop sizes, a
resolution change), against `ffmpeg -pix_fmt nv12|p010le` references."""

import pytest

from ci.harness import report
from ci.harness.streams import SPECS

from .decode import daedalus_decode, parse_fps


@pytest.mark.parametrize("name", [s.name for s in SPECS])
def test_decode_bit_exact(target, stack, running, manifest, name):
    stream = manifest[name]
    res = target.run(daedalus_decode(stack, running.video, stream) + " 2>&1", timeout=900)
    assert res.rc == 0, f"daedalus-decode failed ({res.rc}):\n{res.stdout[-3000:]}\ndaemon log:\n{stack.log_tail()}"
    fps = parse_fps(res.stdout)
    report.figure(f"daedalus-decode {name} ({stream['total_frames']} frames)",
                  f"{fps:.1f} fps" if fps else f"{stream['total_frames'] / res.seconds:.1f} fps (wall)")
