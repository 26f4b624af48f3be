#!/usr/bin/env python3
"""Projects `mpirun` scaling of pgan over N nodes from measured per-node speed and bytes per step (README, "Clusters").

    python3 Benchmarks/mpi_projection.py --node-images-per-second 2644 --megabytes-per-vector 4.22

Model, per training step of global batch B on N nodes (one rank per node, one aligned block of shards per rank):
  compute   = B / (N * node_images_per_second)          each node computes its B/N samples
  replicated= replicated_ms                             optimizer steps and weight packing, on every rank
  bytes     = 2 * (N-1)/N * vector                      reduce-scatter of the block roots + all-gather of the slices,
                                                        per rank and per direction (`ShardReducer`)
  transfer  = bytes * 8 / link_bits_per_second         full duplex: a node sends and receives at once
  latency   = alpha * (2*(N-1) + 5*ceil(log2 N) + 2)    two ring all-gathers of the gradients, five small
                                                        all-gathers (BatchNorm sums, metrics), two message rounds
  step      = compute + replicated + transfer + latency (no overlap of communication and compute is assumed)
  efficiency= (B / node_images_per_second) / (N * step)

The inputs are measurements: `vector` is `bytes_sent_per_step` of `mpirun -np 2 pgan bench --format csv` (rank 0
sends half the gradients twice at N = 2, so it equals the vector), `node_images_per_second` a one-node
`pgan bench`, `replicated_ms` the optimizer and packing phases of `pgan bench --phases`.
"""
import argparse, math


def step_seconds(nodes, batch, args, gbits):
    compute = batch / (nodes * args.node_images_per_second)
    vector = args.megabytes_per_vector * 1e6
    transfer = 2 * (nodes - 1) / nodes * vector * 8 / (gbits * 1e9)
    latency = args.alpha_us * 1e-6 * (2 * (nodes - 1) + 5 * math.ceil(math.log2(nodes)) + 2) if nodes > 1 else 0
    return compute + args.replicated_ms / 1000 + transfer + latency


def efficiency(nodes, batch, args, gbits):
    return (batch / args.node_images_per_second) / (nodes * step_seconds(nodes, batch, args, gbits))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--node-images-per-second", type=float, required=True)
    parser.add_argument("--megabytes-per-vector", type=float, required=True, help="G and D gradients, MB")
    parser.add_argument("--replicated-ms", type=float, default=0.3)
    parser.add_argument("--alpha-us", type=float, default=25, help="per-message latency, microseconds")
    parser.add_argument("--batch-sizes", default="256,1024,4096")
    parser.add_argument("--nodes", default="2,4,8,16,32,64")
    parser.add_argument("--links", default="10,25,100", help="Gb/s")
    parser.add_argument("--target", type=float, default=0.8, help="efficiency for the batch-size search")
    args = parser.parse_args()
    links = [float(x) for x in args.links.split(",")]
    nodes_list = [int(x) for x in args.nodes.split(",")]
    print(f"inputs: {args.node_images_per_second:g} images/s per node, {args.megabytes_per_vector:g} MB of gradients, "
          f"{args.replicated_ms:g} ms replicated per step, {args.alpha_us:g} us per message")
    print("| batch | nodes | " + " | ".join(f"{g:g} Gb/s: images/s (efficiency)" for g in links) + " |")
    print("|---:|---:|" + "---:|" * len(links))
    for batch in (int(x) for x in args.batch_sizes.split(",")):
        for nodes in nodes_list:
            if batch < nodes:
                continue
            cells = [f"{batch / step_seconds(nodes, batch, args, g):,.0f} ({100 * efficiency(nodes, batch, args, g):.0f}%)"
                     for g in links]
            print(f"| {batch} | {nodes} | " + " | ".join(cells) + " |")
    print(f"\nsmallest batch (a multiple of 64) for {100 * args.target:.0f}% efficiency on 64 nodes:")
    for g in links:
        batch = 64
        while efficiency(64, batch, args, g) < args.target and batch < 1 << 22:
            batch += 64
        print(f"  {g:g} Gb/s: batch {batch} ({batch // 64} samples per node)")


if __name__ == "__main__":
    main()
