#!/usr/bin/env python3
"""What a decoder made of a resolution-change stream: how many frames of
each part came out byte-exact and in order, and what is left over.
    reschange_outcome.py OUT MANIFEST NAME
(MANIFEST: the streams' manifest.json, NAME: e.g. h264-reschange). Prints
one line; exit 0 only if OUT is exactly both parts."""

import json
import sys


def frames(data: bytes, w: int, h: int) -> list[bytes]:
    size = w * h + 2 * ((w + 1) // 2) * ((h + 1) // 2)
    return [data[i:i + size] for i in range(0, len(data) - size + 1, size)]


def main() -> int:
    out_path, manifest, name = sys.argv[1:4]
    entry = next(e for e in json.load(open(manifest)) if e["name"] == name)
    first, second = entry["parts"]
    ref1, w1, h1 = first["ref"], first["width"], first["height"]
    ref2, w2, h2 = second["ref"], second["width"], second["height"]
    try:
        out = open(out_path, "rb").read()
    except OSError:
        out = b""
    part1 = frames(open(ref1, "rb").read(), int(w1), int(h1))
    part2 = frames(open(ref2, "rb").read(), int(w2), int(h2))
    size1, size2 = len(part1[0]), len(part2[0])
    got1 = 0  # frames of the first part, in order from the start
    while got1 < len(part1) and out[got1 * size1:(got1 + 1) * size1] == part1[got1]:
        got1 += 1
    rest = out[got1 * size1:]
    got2 = frames(rest, int(w2), int(h2))
    exact2 = sum(1 for f in got2 if f in part2)
    left = len(rest) - len(got2) * size2
    print(f"first part {got1}/{len(part1)} frames, second part {len(got2)}/{len(part2)} "
          f"({exact2} byte-exact), {left} bytes left over")
    return 0 if out == b"".join(part1) + b"".join(part2) else 1


if __name__ == "__main__":
    sys.exit(main())
