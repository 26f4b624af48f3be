#!/usr/bin/env bash
# Regenerates the pictures in README.md from a real default run: 10 epochs on the built-in zeros, then 64 samples.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product pgan
run=$(mktemp -d)
.build/release/pgan train --out "$run"
.build/release/pgan sample --checkpoint "$run/checkpoint.safetensors" --count 64 --out docs/images/samples-10-epochs.png
cp "$run/progress.png" docs/images/progress-10-epochs.png
cp "$run/curves.svg" docs/images/curves-10-epochs.svg
echo "pictures from $run"
