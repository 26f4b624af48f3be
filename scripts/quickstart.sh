#!/usr/bin/env bash
# Sets up what pgan needs on a Debian/Ubuntu machine (scripts/install-dependencies.sh; Swift must be installed),
# builds the release binary and trains the seed DCGAN with its defaults: the built-in MNIST zeros, 10 epochs, one
# thread per physical core. Extra arguments go to `pgan train` (e.g. --epochs 2 --out my-run).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-dependencies.sh
swift build -c release --product pgan
exec .build/release/pgan train "$@"
