#!/usr/bin/env bash
# Regenerates the pictures in README.md from real default runs: 10 epochs on the built-in zeros, then 64 samples;
# 10 epochs on the colour shapes of scripts/make-shapes-data.py, then 64 samples; and --model dcgan for 20 epochs of
# batch 64 on the same shapes written as a PNG folder, then 64 samples.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product pgan
run=$(mktemp -d)
.build/release/pgan train --out "$run"
.build/release/pgan sample --checkpoint "$run/checkpoint.safetensors" --count 64 --out docs/images/samples-10-epochs.png
cp "$run/progress.png" docs/images/progress-10-epochs.png
cp "$run/curves.svg" docs/images/curves-10-epochs.svg
shapes=$(mktemp -d)
python3 scripts/make-shapes-data.py --count 6000 --out "$shapes/shapes-32x32x3.idx.gz"
.build/release/pgan train --data "$shapes/shapes-32x32x3.idx.gz" --out "$shapes/run"
.build/release/pgan sample --checkpoint "$shapes/run/checkpoint.safetensors" --count 64 \
    --out docs/images/shapes-samples-10-epochs.png
python3 scripts/make-shapes-data.py --count 6000 --png-folder "$shapes/png"
.build/release/pgan train --model dcgan --data "$shapes/png" --image-size 32 --batch-size 64 --epochs 20 \
    --out "$shapes/dcgan-run"
.build/release/pgan sample --checkpoint "$shapes/dcgan-run/checkpoint.safetensors" --count 64 \
    --out docs/images/dcgan-shapes-samples-20-epochs.png
echo "pictures from $run, $shapes/run and $shapes/dcgan-run"
