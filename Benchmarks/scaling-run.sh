#!/usr/bin/env bash
# The 16-core scaling run, from the bundle that scripts/make-device-bundle.sh puts in ./device (pgan with a static
# Swift runtime, the shared libraries it needs, the data bundle and the PyTorch peer). Prints one log and writes it
# to $OUT/device-log.txt: pgan bench for both schedulers at batch 32 and 256, a parity check of checkpoints across
# thread counts, one epoch of the zeros, and PyTorch at 1 and 16 threads in the same run. The phase breakdown at 1 and
# 16 threads (pgan bench --phases) shows which phases lose time when all cores share caches and memory.
#   run: bash device/run.sh     (carry: ["device"]; about 4 minutes on 16 cores)
set -u
cd "$(dirname "$0")"
[ -x pgan ] || { gunzip -c pgan.gz > pgan && chmod +x pgan; }
export LD_LIBRARY_PATH=$PWD/lib
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
{
date -u; nproc; grep -m1 "model name" /proc/cpuinfo
./pgan topology --threads 16 | head -4
echo "== bench batch 32"; ./pgan bench --threads 1,2,4,8,16 --batch-size 32 --steps 32 --warmup 8 --repeats 3 --scheduler dispatch,spin --format table
echo "== bench batch 256"; ./pgan bench --threads 1,8,16 --batch-size 256 --steps 4 --warmup 1 --repeats 3 --scheduler dispatch,spin --format table
echo "== phases at 1 and 16 threads (which phase stops scaling)"; ./pgan bench --threads 1,16 --batch-size 32,256 --steps 16 --warmup 4 --repeats 1 --phases --format table
echo "== parity: checkpoints after 6 steps at 1, 7, 16 threads and 16 spinning"
./pgan train --steps 6 --threads 1 --out /tmp/t1 --overwrite --quiet && ./pgan train --steps 6 --threads 7 --out /tmp/t7 --overwrite --quiet && ./pgan train --steps 6 --threads 16 --out /tmp/t16 --overwrite --quiet && ./pgan train --steps 6 --threads 16 --scheduler spin --out /tmp/s16 --overwrite --quiet && cmp /tmp/t1/checkpoint.safetensors /tmp/t7/checkpoint.safetensors && cmp /tmp/t1/checkpoint.safetensors /tmp/t16/checkpoint.safetensors && cmp /tmp/t1/checkpoint.safetensors /tmp/s16/checkpoint.safetensors && echo "PARITY: checkpoints byte-identical"
echo "== epoch of zeros, 16 threads"; ./pgan train --epochs 1 --threads 16 --out /tmp/e1 --overwrite | tail -2
echo "== PyTorch"; PYTHONUNBUFFERED=1 timeout 150 python3 peers/torch_scaling.py --threads 1,16 --batches 32,256 --steps 20 --point-budget 6
} 2>&1 | tee "$OUT/device-log.txt"
