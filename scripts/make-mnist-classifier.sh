#!/usr/bin/env bash
# Trains the classifier pgan ships for measuring samples of 28×28 grey images (pgan eval, --eval-every) on the MNIST
# training set and tests it on MNIST's test set; writes Sources/CBuiltInData/data/mnist-classifier.safetensors.
# The same data, seed and shard count give the same file at any thread count.
#   scripts/make-mnist-classifier.sh [MNIST_DIR]   (default ../shared/data/mnist: the four gzipped IDX files)
set -euo pipefail
cd "$(dirname "$0")/.."
mnist="${1:-../shared/data/mnist}"
swift build -c release --product pgan
.build/release/pgan classifier train \
    --data "$mnist/train-images-idx3-ubyte.gz" --labels "$mnist/train-labels-idx1-ubyte.gz" \
    --test-data "$mnist/t10k-images-idx3-ubyte.gz" --test-labels "$mnist/t10k-labels-idx1-ubyte.gz" \
    --epochs 6 --batch-size 128 --learning-rate 2e-3 --shards 16 --seed 1 \
    --out Sources/CBuiltInData/data/mnist-classifier.safetensors
