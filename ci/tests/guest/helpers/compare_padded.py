#!/usr/bin/env python3
"""Compares raw frames written with row and buffer padding (what GStreamer's
filesink writes: its default stride and its pool's buffer size) with a tight
reference, visible pixels only. Exit 0 when identical.
    compare_padded.py OUT REF WIDTH HEIGHT FRAMES [BYTES_PER_SAMPLE]"""

import sys


def main() -> int:
    out_path, ref_path = sys.argv[1], sys.argv[2]
    w, h, frames = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    bps = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    out, ref = open(out_path, "rb").read(), open(ref_path, "rb").read()
    row = w * bps
    rows = h + (h + 1) // 2  # luma rows + interleaved chroma rows (NV12/P010)
    if len(ref) != row * rows * frames:
        print(f"reference has {len(ref)} bytes, expected {row * rows * frames}")
        return 2
    if frames == 0 or len(out) % frames:
        print(f"output has {len(out)} bytes: not {frames} equal frames")
        return 1
    frame_size = len(out) // frames
    # GStreamer's default stride: rows rounded up to 4 bytes; try it, then tight
    for stride in sorted({(row + 3) & ~3, row}):
        if stride * rows > frame_size:
            continue
        ok = True
        for f in range(frames):
            for r in range(rows):
                a = out[f * frame_size + r * stride:f * frame_size + r * stride + row]
                b = ref[(f * rows + r) * row:(f * rows + r + 1) * row]
                if a != b:
                    ok = False
                    first = (f, r)
                    break
            if not ok:
                break
        if ok:
            print(f"identical: {frames} frames {w}x{h}, stride {stride}, frame size {frame_size}")
            return 0
        print(f"stride {stride}: first difference in frame {first[0]}, row {first[1]}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
