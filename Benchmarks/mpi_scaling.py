#!/usr/bin/env python3
"""R MPI processes of T threads against one process of R x T threads, on this machine: interleaved rounds, medians.

    python3 Benchmarks/mpi_scaling.py --ranks 2 --threads 1 --batch-size 32,256 --rounds 5 .build-mpi/release/pgan

The binary must be built with `swift build -c release --traits MPI` (README, "Clusters"). Each round runs, in a
rotated order, `mpirun -np R pgan bench --threads T` and `pgan bench --threads R*T` (same batch sizes, shards,
steps), both with `--format csv`; images/s per batch size is the median over rounds, and the ratio MPI / one process
is the median of the per-round ratios (adjacent runs, so the VM's drift mostly cancels) with its range. The MPI
columns (time in MPI per step, bytes rank 0 sends per step) come from the MPI runs' own report.
"""
import argparse, os, statistics, subprocess, sys

from compare_peers import cpu_model  # Benchmarks/compare_peers.py, beside this script


def bench(command):
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed: {result.stderr.strip() or result.stdout.strip()}")
    lines = [line for line in result.stdout.strip().splitlines() if line.count(",") > 5]
    header = lines[0].split(",")
    return {int(row["batch_size"]): row for row in (dict(zip(header, line.split(","))) for line in lines[1:])}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binary", help="a pgan built with --traits MPI")
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="threads per MPI process")
    parser.add_argument("--batch-size", default="32,256")
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mpirun", default="mpirun --allow-run-as-root --bind-to core --map-by core")
    args = parser.parse_args()
    common = ["bench", "--batch-size", args.batch_size, "--shards", str(args.shards), "--steps", str(args.steps),
              "--repeats", str(args.repeats), "--format", "csv"]
    runs = {
        "mpi": args.mpirun.split() + ["-np", str(args.ranks), args.binary] + common + ["--threads", str(args.threads)],
        "one": [args.binary] + common + ["--threads", str(args.ranks * args.threads)],
    }
    results = {name: [] for name in runs}
    for round_index in range(args.rounds):
        order = list(runs) if round_index % 2 == 0 else list(reversed(runs))
        for name in order:
            results[name].append(bench(runs[name]))
        print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    print(f"CPU: {cpu_model()}; {args.ranks} MPI processes x {args.threads} threads vs 1 process x "
          f"{args.ranks * args.threads} threads; {args.rounds} interleaved rounds, medians")
    print("batch  one process img/s  MPI img/s  MPI/one (range)        MPI ms/step  step ms  MB sent/step (rank 0)")
    for batch in sorted(results["one"][0]):
        one = [float(r[batch]["images_per_second"]) for r in results["one"]]
        mpi = [float(r[batch]["images_per_second"]) for r in results["mpi"]]
        ratios = [m / o for m, o in zip(mpi, one)]
        mpi_ms = statistics.median(float(r[batch]["mpi_ms_per_step"]) for r in results["mpi"])
        step_ms = statistics.median(float(r[batch]["ms_per_step"]) for r in results["mpi"])
        sent = statistics.median(float(r[batch]["bytes_sent_per_step"]) for r in results["mpi"]) / 1e6
        print(f"{batch:5d}  {statistics.median(one):17.1f}  {statistics.median(mpi):9.1f}  "
              f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})  "
              f"{mpi_ms:11.2f}  {step_ms:7.2f}  {sent:8.2f}")


if __name__ == "__main__":
    main()
