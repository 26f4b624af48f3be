#!/usr/bin/env python3
"""Builds pgan's default data set: the MNIST training images of digit 0 (5 923 images), as one gzipped IDX3 file.

    python3 scripts/make-default-data.py [MNIST_DIR] [OUTPUT]

MNIST_DIR defaults to ../shared/data/mnist (train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz);
OUTPUT to Sources/CBuiltInData/data/mnist-train-zeros.idx3-ubyte.gz. The gzip stream carries no name or
time stamp, so the output is byte-for-byte reproducible.
MNIST: Y. LeCun, C. Cortes, C. J. C. Burges, licensed CC BY-SA 3.0.
"""
import gzip, os, struct, sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
mnist = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "..", "shared", "data", "mnist")
output = sys.argv[2] if len(sys.argv) > 2 else os.path.join(root, "Sources", "CBuiltInData", "data",
                                                            "mnist-train-zeros.idx3-ubyte.gz")
with gzip.open(os.path.join(mnist, "train-images-idx3-ubyte.gz")) as f:
    magic, count, rows, columns = struct.unpack(">IIII", f.read(16))
    assert magic == 0x803, "not an IDX3 image file"
    pixels = f.read()
with gzip.open(os.path.join(mnist, "train-labels-idx1-ubyte.gz")) as f:
    magic, label_count = struct.unpack(">II", f.read(8))
    assert magic == 0x801 and label_count == count, "labels do not match images"
    labels = f.read()
size = rows * columns
zeros = [pixels[i * size:(i + 1) * size] for i in range(count) if labels[i] == 0]
os.makedirs(os.path.dirname(output), exist_ok=True)
with open(output, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as f:
    f.write(struct.pack(">IIII", 0x803, len(zeros), rows, columns))
    f.write(b"".join(zeros))
print(f"{output}: {len(zeros)} images of {rows}x{columns}")
