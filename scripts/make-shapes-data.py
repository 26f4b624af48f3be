#!/usr/bin/env python3
"""Writes a colour training set for pgan: 32x32 RGB images of one coloured shape (a disc, a square or a triangle) on
a softly tinted, noisy background, as a gzipped 4-dimensional IDX file (count x 32 x 32 x 3, uint8), or with
--png-folder as a folder of PNG files in one sub-folder per shape (an ImageFolder layout: discs/, squares/,
triangles/).

    python3 scripts/make-shapes-data.py --count 6000 --out shapes-32x32x3.idx.gz
    pgan train --data shapes-32x32x3.idx.gz --epochs 10 --out runs/shapes
    python3 scripts/make-shapes-data.py --count 600 --png-folder shapes/
    pgan train --data shapes --class discs --out runs/discs

Standard library only; the same --seed gives the same bytes.
"""
import argparse, gzip, math, os, random, struct, zlib

SHAPES = ["discs", "squares", "triangles"]


def image(rng):
    side = 32
    base = [rng.uniform(0.15, 0.45) for _ in range(3)]
    tilt = [rng.uniform(-0.15, 0.15) for _ in range(3)]
    colour = [rng.uniform(0.55, 1.0) if c == rng.randrange(3) else rng.uniform(0.0, 0.6) for c in range(3)]
    kind = rng.randrange(3)
    cx, cy = rng.uniform(10, 22), rng.uniform(10, 22)
    size = rng.uniform(5, 9)
    angle = rng.uniform(0, 2 * math.pi)
    pixels = bytearray()
    for y in range(side):
        for x in range(side):
            dx, dy = x + 0.5 - cx, y + 0.5 - cy
            if kind == 0:
                inside = dx * dx + dy * dy <= size * size
            elif kind == 1:
                rx = dx * math.cos(angle) + dy * math.sin(angle)
                ry = -dx * math.sin(angle) + dy * math.cos(angle)
                inside = abs(rx) <= size * 0.8 and abs(ry) <= size * 0.8
            else:
                rx = dx * math.cos(angle) + dy * math.sin(angle)
                ry = -dx * math.sin(angle) + dy * math.cos(angle)
                inside = ry <= size * 0.6 and ry >= -size * 0.9 + abs(rx) * 1.6
            for c in range(3):
                if inside:
                    value = colour[c]
                else:
                    value = base[c] + tilt[c] * (x - 16) / 16 + rng.uniform(-0.06, 0.06)
                pixels.append(max(0, min(255, int(round(value * 255)))))
    return kind, bytes(pixels)


def png(pixels, side=32):
    """An 8-bit RGB PNG of side x side pixels (filter None on every row)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    rows = b"".join(b"\x00" + pixels[y * side * 3:(y + 1) * side * 3] for y in range(side))
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="shapes-32x32x3.idx.gz")
    parser.add_argument("--png-folder", help="write PNG files into this folder (one sub-folder per shape) instead")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    if args.png_folder:
        for name in SHAPES:
            os.makedirs(os.path.join(args.png_folder, name), exist_ok=True)
        for index in range(args.count):
            kind, pixels = image(rng)
            with open(os.path.join(args.png_folder, SHAPES[kind], f"{index:06d}.png"), "wb") as f:
                f.write(png(pixels))
        print(f"wrote {args.count} PNG images of 32x32 to {args.png_folder}/{{{','.join(SHAPES)}}}")
        return
    header = struct.pack(">BBBB", 0, 0, 0x08, 4) + struct.pack(">IIII", args.count, 32, 32, 3)
    with gzip.GzipFile(args.out, "wb", mtime=0) as f:
        f.write(header)
        for _ in range(args.count):
            f.write(image(rng)[1])
    print(f"wrote {args.count} images of 32x32x3 to {args.out}")


if __name__ == "__main__":
    main()
