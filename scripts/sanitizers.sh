#!/usr/bin/env bash
# Runs the tests that exercise threads under ThreadSanitizer (parity across thread counts, the executor and its
# spinning pool, phase tracing) and the kernel and reader tests under AddressSanitizer, each in its own build folder.
# Prints each sanitizer's report lines and the XCTest totals; exits non-zero if a sanitizer reported or a test failed.
# Usage: scripts/sanitizers.sh [thread|address]…   (default: both)
set -uo pipefail
cd "$(dirname "$0")/.."
kinds=("$@")
[ ${#kinds[@]} -gt 0 ] || kinds=(thread address)
status=0
for kind in "${kinds[@]}"; do
    case "$kind" in
        thread) filter='ParityTests|ModelDescriptionTests|TopologyTests|ExecutorLifetimeTests|PhaseTraceTests|ShardReductionTests|SessionTests|ShardReducerTests|DistributedTrainingTests|ImageFolderTests|QualityTests|GoldenTests' ;;
        address) filter='ParallelTensorTests|HostileInputTests|FuzzRegressionTests|CheckpointTests|DataTests|GoldenTests|ModelDescriptionTests|ActivationPlanTests|DistributedTrainingTests|ImageFolderTests|QualityTests|ParityTests' ;;
        *) echo "unknown sanitizer $kind (thread, address)" >&2; exit 2 ;;
    esac
    log=$(mktemp)
    echo "== $kind sanitizer: $filter"
    # LeakSanitizer is off: XCTest keeps every test case object alive and Foundation's Process leaks a few bytes per
    # launch, which would drown the memory errors this run is for.
    ASAN_OPTIONS=detect_leaks=0 swift test --sanitize="$kind" --build-path ".build-$kind" --filter "$filter" >"$log" 2>&1
    result=$?
    grep -E "WARNING: ThreadSanitizer|ERROR: AddressSanitizer|SUMMARY: (Thread|Address)Sanitizer" "$log" | sort | uniq -c
    grep -E "Executed [0-9]+ tests" "$log" | tail -n 1
    if grep -qE "WARNING: ThreadSanitizer|ERROR: AddressSanitizer" "$log" || [ $result -ne 0 ]; then
        echo "$kind sanitizer: FAILED (log: $log)"
        status=1
    else
        echo "$kind sanitizer: clean"
    fi
done
exit $status
