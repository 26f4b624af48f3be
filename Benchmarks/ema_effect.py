#!/usr/bin/env python3
"""Does the generator's moving average (--ema) make better samples? Trains the default run (10 epochs on the
built-in zeros, measured each epoch by the built-in classifier) for each seed with and without --ema, and prints the
Fréchet distance and class rate after the last epoch of each, their means, and the real-against-real floor.

    python3 Benchmarks/ema_effect.py --seeds 1,2,3 --ema 0.999 [--pgan .build/release/pgan] [--threads 2]
"""
import argparse, csv, os, re, statistics, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(pgan, seed, ema, threads, epochs):
    out = tempfile.mkdtemp(prefix="pgan-ema-")
    command = [pgan, "train", "--seed", str(seed), "--threads", str(threads), "--epochs", str(epochs), "--out", out]
    command += ["--ema", str(ema or 0)]  # 0: none (the default keeps one)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed: {result.stderr.strip()}")
    floor = float(re.search(r"real against real: FD ([\d.]+)", result.stdout).group(1))
    with open(os.path.join(out, "metrics.csv")) as f:
        last = list(csv.DictReader(f))[-1]
    return float(last["frechet_distance"]), float(last["class_rate"]), floor


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--pgan", default=os.path.join(ROOT, ".build", "release", "pgan"))
    a = ap.parse_args()
    rows, floor = [], None
    for seed in map(int, a.seeds.split(",")):
        plain, averaged = run(a.pgan, seed, None, a.threads, a.epochs), run(a.pgan, seed, a.ema, a.threads, a.epochs)
        floor = plain[2]
        rows.append((seed, plain, averaged))
        print(f"seed {seed}: without EMA FD {plain[0]:.3f} class {plain[1]:.3f}; with --ema {a.ema} FD {averaged[0]:.3f} class {averaged[1]:.3f}", flush=True)
    print(f"\n| seeds | FD without EMA (mean) | FD with --ema {a.ema} (mean) | class rate without | class rate with | real-against-real floor |")
    print("|---|---:|---:|---:|---:|---:|")
    mean = lambda values: statistics.mean(values)
    print(f"| {a.seeds} | {mean([r[1][0] for r in rows]):.2f} | {mean([r[2][0] for r in rows]):.2f} | "
          f"{mean([r[1][1] for r in rows]):.3f} | {mean([r[2][1] for r in rows]):.3f} | {floor:.2f} |")


if __name__ == "__main__":
    main()
