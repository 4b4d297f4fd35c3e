"""Any-chunking input (issue 6): the daemon parses H.264/HEVC/MPEG-2 byte
streams (daemon/src/bytestream.rs; chunkings of 1 byte, 7 bytes and a whole
file are checked bit-exact on the host) and tells the kernel, which then
advertises V4L2_FMT_FLAG_CONTINUOUS_BYTESTREAM for those formats.

Not here yet: plain `v4l2-ctl --stream-from` of an Annex-B file. v4l2-ctl
1.30.1 issues V4L2_DEC_CMD_STOP right after its buffer set-up when the file
ends within its first OUTPUT buffers (sizeimage is at least 2 MiB), before
CAPTURE streams; the daemon announces no format, v4l2-ctl's DQBUF
gets EINVAL and it writes no frame (see docs/clients.md)."""

import re


def test_continuous_bytestream_is_advertised(target, running):
    res = target.run(f"v4l2-ctl -d {running.video} --list-formats-out", check=True)
    flags = {m.group(1): m.group(2) for m in re.finditer(r"'(\w+)' \(([^)]*)\)", res.stdout)}
    assert "continuous-bytestream" in flags.get("H264", ""), res.stdout
    assert "continuous-bytestream" in flags.get("HEVC", ""), res.stdout
    # frames without start codes: one frame per buffer stays the rule
    assert "continuous-bytestream" not in flags.get("VP90", ""), res.stdout
