#!/usr/bin/env python3
"""Rewrites an IVF (VP8/VP9/AV1), Annex-B (H.264/HEVC) or MPEG-2 video stream as the
framed file v4l2-ctl and v4l2-compliance read with --stream-from-hdr: one
access unit per OUTPUT buffer, each prefixed by the big-endian id 'Vhdr' and
its size. Their plain --stream-from cuts the file into buffer-sized chunks:
fine for H.264/HEVC/MPEG-2 (the decoder takes any chunking, see
test_46_bytestream.py), not for VP8/VP9/AV1, whose frames have no start
codes and must come one per buffer.
    to_v4l2ctl_hdr.py IN OUT [h264|hevc|mpeg2]"""

import struct
import sys

HDR_ID = int.from_bytes(b"Vhdr", "little")  # v4l2_fourcc('V','h','d','r')


def ivf_frames(data: bytes):
    off = struct.unpack_from("<H", data, 6)[0]
    while off + 12 <= len(data):
        size = struct.unpack_from("<I", data, off)[0]
        off += 12
        yield data[off:off + size]
        off += size


def nal_units(data: bytes):
    starts = []
    i = 0
    while True:
        i = data.find(b"\x00\x00\x01", i)
        if i < 0:
            break
        starts.append(i + 3)
        i += 3
    for n, s in enumerate(starts):
        end = starts[n + 1] - 3 if n + 1 < len(starts) else len(data)
        while end > s and data[end - 1] == 0:
            end -= 1
        yield data[s:end]


def first_slice(nal: bytes, codec: str) -> bool:
    """Starts a new picture: a VCL NAL whose first_mb/first_slice flag is set."""
    if codec == "h264":
        t = nal[0] & 0x1F
        return t in (1, 5) and len(nal) > 1 and nal[1] & 0x80 != 0
    t = (nal[0] >> 1) & 0x3F
    return t < 32 and len(nal) > 2 and nal[2] & 0x80 != 0


def annexb_access_units(data: bytes, codec: str):
    au, has_slice = bytearray(), False
    for nal in nal_units(data):
        if not nal:
            continue
        vcl = (nal[0] & 0x1F) in range(1, 6) if codec == "h264" else ((nal[0] >> 1) & 0x3F) < 32
        # parameter sets and SEI after a picture, or a new first slice, open the next unit
        if has_slice and (first_slice(nal, codec) or not vcl):
            yield bytes(au)
            au, has_slice = bytearray(), False
        au += b"\x00\x00\x00\x01" + nal
        has_slice |= vcl
    if au:
        yield bytes(au)


def mpeg2_pictures(data: bytes):
    """One picture per unit, with the sequence/GOP/picture headers before it."""
    start, has_slice, i = 0, False, data.find(b"\x00\x00\x01")
    while 0 <= i < len(data) - 3:
        code = data[i + 3]
        if has_slice and code in (0x00, 0xB3, 0xB8):
            yield data[start:i]
            start, has_slice = i, False
        has_slice |= 0x01 <= code <= 0xAF
        i = data.find(b"\x00\x00\x01", i + 4)
    if start < len(data):
        yield data[start:]


def main() -> int:
    src, dst = sys.argv[1], sys.argv[2]
    data = open(src, "rb").read()
    codec = sys.argv[3] if len(sys.argv) > 3 else "h264"
    if data[:4] == b"DKIF":
        units = list(ivf_frames(data))
    elif codec == "mpeg2":
        units = list(mpeg2_pictures(data))
    else:
        units = list(annexb_access_units(data, codec))
    with open(dst, "wb") as out:
        for u in units:
            out.write(struct.pack(">II", HDR_ID, len(u)) + u)
    print(f"{len(units)} access units")
    return 0


if __name__ == "__main__":
    sys.exit(main())
