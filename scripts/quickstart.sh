#!/usr/bin/env bash
# Sets up what pgan needs on a Debian/Ubuntu machine (scripts/install-dependencies.sh; Swift must be installed),
# builds the release binary and trains the seed DCGAN with its defaults: the built-in MNIST zeros, 10 epochs, one
# thread per physical core, into pgan-run/ (replacing an earlier quick-start run there). Extra arguments go to
# `pgan train` (e.g. --epochs 2 --out my-run).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-dependencies.sh
swift build -c release --product pgan
# A new run into a directory that holds one needs --overwrite; a --resume continues instead.
overwrite=(--overwrite)
for argument in "$@"; do [ "$argument" = "--resume" ] && overwrite=(); done
exec .build/release/pgan train "${overwrite[@]}" "$@"
