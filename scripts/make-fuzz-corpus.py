#!/usr/bin/env python3
"""Writes the seed corpus of pgan's fuzzers (Fuzz/corpus/<target>/): small valid inputs of each reader's format and
a few near misses, so libFuzzer starts from the structure and mutates from there. Run from the repository root."""
import gzip
import json
import os
import struct

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Fuzz", "corpus")


def write(target, name, data):
    directory = os.path.join(root, target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def idx(dimensions, payload):
    return bytes([0, 0, 8, len(dimensions)]) + b"".join(struct.pack(">I", d) for d in dimensions) + payload


images = idx([3, 4, 4], bytes(range(48)))
labels = idx([3], bytes([0, 1, 0]))
write("idx", "images.idx", images)
write("idx", "labels.idx", labels)
write("idx", "images.idx.gz", gzip.compress(images, mtime=0))
write("idx", "two-members.idx.gz", gzip.compress(images[:20], mtime=0) + gzip.compress(images[20:], mtime=0))
write("idx", "truncated.idx", images[:30])
write("idx", "huge-header.idx", idx([0xFFFFFFFF, 0xFFFFFFFF], b""))


def safetensors(metadata, tensors):
    header = {"__metadata__": metadata}
    data = b""
    for name, shape, values in tensors:
        raw = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - (len(text) + 8) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


metadata = {"format": "pgan-dcgan-checkpoint", "version": "1", "model": "seed-dcgan-28x28", "step": "3",
            "seed": "42", "shards": "4", "batch_size": "16", "optimizer": "rmsprop", "learning_rate": "0.001",
            "generator_optimizer_iterations": "3", "discriminator_optimizer_iterations": "3",
            "data_images": "64", "data_crc32": "12345", "run_data": "/data/x.idx", "run_labels": "",
            "run_digit": "", "run_target_steps": "12"}
tensors = [("generator.dense.bias", [4], [0.5, -1.0, 2.0, 0.0]), ("discriminator.dense.kernel", [2, 1], [1.0, 2.0])]
write("safetensors", "checkpoint.safetensors", safetensors(metadata, tensors))
write("safetensors", "no-metadata.safetensors", safetensors({}, tensors[:1]))
write("safetensors", "negative-shape.safetensors", safetensors(metadata, [("t", [-1], [])]))

history = "step,d_loss,g_loss,d_acc_real,d_acc_fake,g_fooling_rate\n" + "".join(
    "%d,0.69%d,0.7,0.5,0.5,0.25\n" % (step, step) for step in range(1, 5))
metrics = ("epoch,step,steps,d_loss,g_loss,d_acc_real,d_acc_fake,g_fooling_rate,images_per_second,seconds\n"
           "1,4,4,0.693147,0.700000,0.500000,0.500000,0.250000,612.0,0.105\n"
           "2,8,4,0.683147,0.710000,0.520000,0.480000,0.260000,600.5,0.107\n")
write("runlogs", "history.csv", history.encode())
write("runlogs", "metrics.csv", metrics.encode())
write("runlogs", "nan-step.csv", history.replace("\n3,", "\nnan,").encode())
