#!/usr/bin/env bash
# Builds pgan's libFuzzer targets (Fuzz/, with -sanitize=fuzzer,address) and runs each for SECONDS (default 600)
# from the committed seed corpus. New corpus entries go to a scratch directory; a crash is written to
# Fuzz/crashes/<target>/ — commit it, and it runs as a regression test in `swift test` (FuzzRegressionTests).
# Usage: scripts/fuzz.sh [SECONDS] [target…]   targets: idx safetensors runlogs
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(idx safetensors runlogs)
swift build --package-path Fuzz --build-path .build-fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld 2>&1 | tail -n 1
for target in "${targets[@]}"; do
    case "$target" in
        idx) product=FuzzIDX ;;
        safetensors) product=FuzzSafeTensors ;;
        runlogs) product=FuzzRunLogs ;;
        *) echo "unknown target $target (idx, safetensors, runlogs)" >&2; exit 2 ;;
    esac
    work=$(mktemp -d)
    mkdir -p "Fuzz/crashes/$target"
    echo "== $target: $seconds s"
    ".build-fuzz/debug/$product" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 \
        -artifact_prefix="Fuzz/crashes/$target/" -print_final_stats=1 "$work" "Fuzz/corpus/$target" 2>&1 \
        | grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss|==[0-9]+==ERROR|SUMMARY|artifact_prefix|Test unit written)" || true
    rm -rf "$work"
done
