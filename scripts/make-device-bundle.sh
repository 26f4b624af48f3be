#!/usr/bin/env bash
# Packs pgan for a machine without Swift or hwloc (the 16-core benchmark machine) into ./device, which git ignores:
# a release binary with the Swift runtime linked in (stripped, gzipped; the default data and classifier are inside it),
# libhwloc/libudev/libz/libpng/libturbojpeg, the PyTorch peer scripts and Benchmarks/scaling-run.sh as device/run.sh.
# See DEVELOPERS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --static-swift-stdlib --product pgan
rm -rf device
mkdir -p device/lib device/peers
strip -o device/pgan .build/release/pgan
gzip device/pgan
for library in libhwloc.so.15 libudev.so.1 libz.so.1 libpng16.so.16 libturbojpeg.so.0; do
    path=$(ldconfig -p | awk -v name="$library" '$1 == name && /x86-64/ { print $NF; exit }')
    [ -n "$path" ] || { echo "make-device-bundle: $library not found (./scripts/install-dependencies.sh)" >&2; exit 1; }
    cp "$path" device/lib/
done
peers=${PGAN_PEERS:-../shared/peers}
if [ -d "$peers" ]; then cp "$peers"/common.py "$peers"/torch_scaling.py device/peers/; else echo "make-device-bundle: no $peers, PyTorch will be skipped" >&2; fi
cp Benchmarks/scaling-run.sh device/run.sh
du -sh device
