#!/usr/bin/env python3
"""pgan against PyTorch and Keras/JAX on the same machine, in one run, one table.

    python3 Benchmarks/compare_peers.py --threads 1,2 --batch-size 32
    python3 Benchmarks/compare_peers.py --model dcgan --image-size 64 --channels 3 --batch-size 64 --rounds 5
    python3 Benchmarks/compare_peers.py --setup          # first create the peers' venv (torch, keras, jax: several GB)

Runs `pgan bench --format json` (the release binary; built if missing), the reference scripts in ../shared/peers
(`torch_scaling.py` for PyTorch eager at each thread count, `dcgan_keras.py --mode jit` pinned with taskset for
Keras 3 on JAX) with the same model, step, batch and thread counts, and prints a markdown table with images/s and
the ratio pgan / peer. A peer whose packages are missing is reported as such and skipped.
With --model dcgan the peer is PyTorch's DCGAN example itself (Benchmarks/dcgan_torch.py: the paper's model, Adam,
the example's step) at --image-size/--channels; Keras has no such peer here. --rounds N runs pgan and PyTorch N times,
alternating, and reports each one's median and the median of the per-round ratios (this VM drifts 10–25%).
Options: --peers DIR (default ../shared/peers), --venv DIR (default ~/.cache/pgan-peers-venv, or $PGAN_PEERS_VENV),
--pgan PATH (default .build/release/pgan), --steps N, --no-keras, --json FILE (also write the rows as JSON).
"""
import statistics
import argparse, datetime, json, os, platform, re, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(command, env=None, timeout=3600):
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    return result.returncode, result.stdout, result.stderr


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def setup_venv(venv):
    print(f"creating {venv} and installing torch, numpy, keras, jax (several GB) ...", flush=True)
    subprocess.check_call([sys.executable, "-m", "venv", venv])
    subprocess.check_call([os.path.join(venv, "bin", "pip"), "install", "-q", "torch", "numpy", "keras", "jax"])


def peer_python(venv):
    candidate = os.path.join(venv, "bin", "python")
    return candidate if os.path.exists(candidate) else sys.executable


def has_module(python, module):
    # Keras picks its backend at import; without this it looks for TensorFlow.
    return run([python, "-c", f"import {module}"], env=dict(os.environ, KERAS_BACKEND="jax"))[0] == 0


def pgan_points(pgan, threads, batches, steps, model_flags=()):
    code, out, err = run([pgan, "bench", "--threads", ",".join(map(str, threads)),
                          "--batch-size", ",".join(map(str, batches)), "--steps", str(steps), "--format", "json",
                          *model_flags])
    if code != 0:
        sys.exit(f"pgan bench failed: {err.strip()}")
    return {(p["batch_size"], p["threads"]): p for p in json.loads(out)}, err


def torch_points(python, peers, threads, batches, steps, dcgan=None):
    if dcgan:
        command = [python, os.path.join(ROOT, "Benchmarks", "dcgan_torch.py"), "--threads", ",".join(map(str, threads)),
                   "--batches", ",".join(map(str, batches)), "--steps", str(steps), *dcgan]
    else:
        command = [python, os.path.join(peers, "torch_scaling.py"), "--threads", ",".join(map(str, threads)),
                   "--batches", ",".join(map(str, batches)), "--steps", str(steps), "--max-threads", str(max(threads))]
    code, out, err = run(command)
    if code != 0:
        print(f"PyTorch run failed: {err.strip()[-500:]}", file=sys.stderr)
        return {}, ""
    points = {}
    for match in re.finditer(r"batch\s+(\d+) threads\s+(\d+):\s+([\d.]+) images/s", out):
        points[(int(match.group(1)), int(match.group(2)))] = float(match.group(3))
    version = next((line for line in out.splitlines() if line.startswith("torch ")), "")
    return points, version.split(" |")[0]


def keras_points(python, peers, threads, batches, steps):
    points = {}
    for batch in batches:
        for t in threads:
            cpus = ",".join(map(str, sorted(os.sched_getaffinity(0))[:t]))
            env = dict(os.environ, KERAS_BACKEND="jax", MNIST_DIR=os.environ.get("MNIST_DIR", os.path.join(peers, "..", "data", "mnist")),
                       XLA_FLAGS=f"--xla_cpu_multi_thread_eigen={'true' if t > 1 else 'false'} intra_op_parallelism_threads={t}")
            code, out, err = run(["taskset", "-c", cpus, python, os.path.join(peers, "dcgan_keras.py"), "--mode", "jit",
                                  "--batch", str(batch), "--threads", str(t), "--steps", str(steps), "--reps", "3"], env=env)
            line = next((l for l in out.splitlines() if l.startswith("RESULT ")), None)
            if code != 0 or line is None:
                print(f"Keras/JAX run failed (batch {batch}, {t} threads): {err.strip()[-300:]}", file=sys.stderr)
                continue
            points[(batch, t)] = json.loads(line[len("RESULT "):])["median_images_per_s"]
    return points


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batch-size", default="32")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--peers", default=os.path.join(ROOT, "..", "shared", "peers"))
    ap.add_argument("--venv", default=os.environ.get("PGAN_PEERS_VENV", os.path.expanduser("~/.cache/pgan-peers-venv")))
    ap.add_argument("--pgan", default=os.path.join(ROOT, ".build", "release", "pgan"))
    ap.add_argument("--setup", action="store_true", help="create the venv with the peers' packages first")
    ap.add_argument("--no-keras", action="store_true")
    ap.add_argument("--json", help="also write the table rows to this file")
    ap.add_argument("--model", choices=["seed", "dcgan"], default="seed")
    ap.add_argument("--image-size", type=int, default=64, help="--model dcgan: the image side")
    ap.add_argument("--channels", type=int, default=3, help="--model dcgan: 1 or 3")
    ap.add_argument("--rounds", type=int, default=1, help="alternating runs of pgan and PyTorch; medians reported")
    a = ap.parse_args()
    dcgan = a.model == "dcgan"
    model_flags = ["--model", "dcgan", "--image-size", str(a.image_size), "--channels", str(a.channels)] if dcgan else []
    torch_model = ["--image-size", str(a.image_size), "--channels", str(a.channels)] if dcgan else None
    threads = [int(x) for x in a.threads.split(",")]
    batches = [int(x) for x in a.batch_size.split(",")]
    if a.setup:
        setup_venv(a.venv)
    if not os.path.exists(a.pgan):
        subprocess.check_call(["swift", "build", "-c", "release", "--product", "pgan"], cwd=ROOT)
    python = peer_python(a.venv)

    has_torch = has_module(python, "torch")
    if not has_torch:
        print(f"PyTorch not found for {python}: run with --setup, or set --venv", file=sys.stderr)
    # Alternate the two, so drift of the machine's speed hits both alike; medians over the rounds.
    our_rounds, torch_rounds, torch_version = [], [], ""
    for _ in range(a.rounds):
        ours, machine = pgan_points(a.pgan, threads, batches, a.steps, model_flags)
        our_rounds.append(ours)
        if has_torch:
            points, torch_version = torch_points(python, a.peers, threads, batches, a.steps, torch_model)
            torch_rounds.append(points)
    median = lambda values: statistics.median(values) if values else None
    ours = {key: dict(our_rounds[0][key], images_per_second=median([r[key]["images_per_second"] for r in our_rounds]),
                      gflops=median([r[key]["gflops"] for r in our_rounds]))
            for key in our_rounds[0]}
    torch = {key: median([r[key] for r in torch_rounds if key in r]) for key in (torch_rounds[0] if torch_rounds else {})}
    ratios = {key: median([o[key]["images_per_second"] / t[key] for o, t in zip(our_rounds, torch_rounds) if t.get(key)])
              for key in torch}
    spreads = {key: (min(v), max(v)) for key in torch
               for v in [[o[key]["images_per_second"] / t[key] for o, t in zip(our_rounds, torch_rounds) if t.get(key)]] if v}
    keras = {}
    if not dcgan and not a.no_keras and has_module(python, "keras") and has_module(python, "jax"):
        keras = keras_points(python, a.peers, threads, batches, a.steps)

    model = f"dcgan {a.image_size}×{a.image_size}×{a.channels} (PyTorch's DCGAN example)" if dcgan else "seed DCGAN"
    print(f"# pgan vs peers — {model}, {datetime.date.today().isoformat()}, {cpu_model()}, "
          f"{len(os.sched_getaffinity(0))} CPUs, {a.rounds} round{'s' if a.rounds > 1 else ''}")
    for line in machine.splitlines():
        print(f"# {line}")
    if torch_version:
        print(f"# peer: {torch_version} (eager, oneDNN)")
    print()
    print("| batch | threads | pgan images/s | pgan speedup | pgan GFLOP/s | PyTorch images/s | pgan / PyTorch | Keras-JAX images/s | pgan / Keras-JAX |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for batch in batches:
        for t in threads:
            p = ours[(batch, t)]
            tp, kp = torch.get((batch, t)), keras.get((batch, t))
            row = dict(batch=batch, threads=t, pgan=p["images_per_second"], speedup=p["speedup"], gflops=p["gflops"],
                       torch=tp, keras_jax=kp)
            rows.append(row)
            fmt = lambda v: f"{v:.1f}" if v else "–"
            ratio = lambda v: f"{p['images_per_second'] / v:.2f}×" if v else "–"
            if (batch, t) in ratios and a.rounds > 1:
                low, high = spreads[(batch, t)]
                row["torch_ratio_range"] = [low, high]
                torch_ratio = f"{ratios[(batch, t)]:.2f}× ({low:.2f}–{high:.2f})"
            else:
                torch_ratio = ratio(tp)
            speedup = f"{p['speedup']:.2f}×" if p["speedup"] else "–"
            print(f"| {batch} | {t} | {p['images_per_second']:.1f} | {speedup} | {p['gflops']:.1f} | {fmt(tp)} | {torch_ratio} | {fmt(kp)} | {ratio(kp)} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
