#!/usr/bin/env bash
# Sets up what pgan needs on a Debian/Ubuntu machine (hwloc and zlib development files; Swift must be installed),
# builds the release binary and trains the seed DCGAN with its defaults: the built-in MNIST zeros, 10 epochs, one
# thread per physical core. Extra arguments go to `pgan train` (e.g. --epochs 2 --out my-run).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
for package in libhwloc-dev zlib1g-dev pkg-config; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi
swift build -c release --product pgan
exec .build/release/pgan train "$@"
