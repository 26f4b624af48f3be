#!/usr/bin/env python3
"""A/B throughput of two or more pgan builds on this machine: interleaved runs, medians, ratios to the first.

    python3 Benchmarks/ab.py --pairs 6 main=/tmp/pgan-main new=.build/release/pgan
    python3 Benchmarks/ab.py --threads 1,2 --batch-size 32,256 --rss main=/tmp/pgan-main new=.build/release/pgan
    python3 Benchmarks/ab.py --threads 1 --batch-size 64 --steps 5 --model-flags="--model dcgan --channels 3" a=... b=...

Each round runs every build once, in a rotated order (so no build always runs first or last), as
`pgan bench --format csv` over the given thread counts and batch sizes; images/s per (threads, batch) is the median
over rounds, and each build's ratio to the first is also given as the median of the per-round ratios (each round's
runs are adjacent in time, so the ratio of a round cancels most of the drift) with their range. With more than one
thread count, each build's speedup over the fewest threads is given the same way, per round. This VM drifts by
10-25% over minutes, so only interleaved rounds compare builds: two builds of one commit differ by up to 5% in 3
rounds here, so use 5 or more. With --rss, each build also trains --rss-steps steps at
batch 32 on 2 threads under /usr/bin/time and reports the peak resident memory (median over rounds).
"""
import argparse, os, statistics, subprocess, sys, tempfile

from compare_peers import cpu_model  # Benchmarks/compare_peers.py, beside this script


def bench(binary, args):
    command = [binary, "bench", "--threads", args.threads, "--batch-size", args.batch_size, "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--repeats", str(args.repeats), "--format", "csv", *args.model_flags.split()]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{binary} bench failed: {result.stderr.strip()}")
    lines = result.stdout.strip().splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, line.split(","))) for line in lines[1:]]
    return {(int(r["threads"]), int(r["batch_size"])): float(r["images_per_second"]) for r in rows}


def spread(ratios):
    return f"{statistics.median(ratios):.3f} [{min(ratios):.3f}, {max(ratios):.3f}]"


def peak_rss_mib(binary, steps):
    with tempfile.TemporaryDirectory() as directory:
        command = ["/usr/bin/time", "-f", "%M", binary, "train", "--steps", str(steps), "--threads", "2",
                   "--out", os.path.join(directory, "run")]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"{binary} train failed: {result.stderr.strip()}")
        return int(result.stderr.strip().splitlines()[-1]) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("builds", nargs="+", help="NAME=PATH of a pgan binary; the first is the baseline")
    parser.add_argument("--pairs", type=int, default=5, help="rounds (each runs every build once)")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--batch-size", default="32,256")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model-flags", default="", help="more bench flags, e.g. \"--model dcgan --channels 3\"")
    parser.add_argument("--rss", action="store_true", help="also measure peak RSS of a short training run")
    parser.add_argument("--rss-steps", type=int, default=100)
    args = parser.parse_args()
    builds = []
    for spec in args.builds:
        name, _, path = spec.partition("=")
        if not path or not os.access(path, os.X_OK):
            sys.exit(f"{spec}: expected NAME=PATH of an executable pgan")
        builds.append((name, path))
    results = {name: {} for name, _ in builds}
    rss = {name: [] for name, _ in builds}
    for round_index in range(args.pairs):
        order = builds[round_index % len(builds):] + builds[:round_index % len(builds)]
        for name, path in order:
            for key, value in bench(path, args).items():
                results[name].setdefault(key, []).append(value)
            if args.rss:
                rss[name].append(peak_rss_mib(path, args.rss_steps))
        print(f"round {round_index + 1}/{args.pairs} done", file=sys.stderr)
    baseline = builds[0][0]
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs; medians of {args.pairs} interleaved rounds "
          f"(bench --steps {args.steps} --repeats {args.repeats})\n")
    columns = ["threads", "batch"] + [f"{name} img/s" for name, _ in builds]
    for name, _ in builds[1:]:
        columns += [f"{name}/{baseline} (medians)", f"{name}/{baseline} per round: median [min, max]"]
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    for key in sorted(results[baseline]):
        medians = [statistics.median(results[name][key]) for name, _ in builds]
        cells = [str(key[0]), str(key[1])] + [f"{m:.1f}" for m in medians]
        for (name, _), median in zip(builds[1:], medians[1:]):
            cells += [f"{median / medians[0]:.3f}", spread([b / a for a, b in zip(results[baseline][key], results[name][key])])]
        print("| " + " | ".join(cells) + " |")
    # Thread scaling as each round measured it: a round's runs at every thread count come from one bench call, seconds
    # apart, so their ratio cancels the drift that the medians above keep.
    thread_counts = sorted({key[0] for key in results[baseline]})
    batches = sorted({key[1] for key in results[baseline]})
    if len(thread_counts) > 1:
        fewest = thread_counts[0]
        print(f"\nspeedup over {fewest} thread{'s' if fewest > 1 else ''}, per round: median [min, max]\n")
        print("| build | threads | " + " | ".join(f"batch {b}" for b in batches) + " |")
        print("|" + " --- |" * (2 + len(batches)))
        for name, _ in builds:
            for threads in thread_counts[1:]:
                cells = [spread([b / a for a, b in zip(results[name][(fewest, batch)], results[name][(threads, batch)])])
                         for batch in batches]
                print(f"| {name} | {threads} | " + " | ".join(cells) + " |")
    if args.rss:
        print("\npeak RSS, train --steps %d --threads 2 --batch-size 32 (MiB): " % args.rss_steps
              + ", ".join(f"{name} {statistics.median(values):.1f}" for name, values in rss.items()))


if __name__ == "__main__":
    main()
