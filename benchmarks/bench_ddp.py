"""Training speed with 1 and 2 processes (torchrun + DDP, gloo on the CPU, nccl on CUDA): steps/s and crops/s.

    .venv/bin/python benchmarks/bench_ddp.py                  # the default train section, 40 steps
    .venv/bin/python benchmarks/bench_ddp.py --steps 20 --processes 1 2 4
    .venv/bin/python benchmarks/bench_ddp.py --device cuda --batch-size 64 --crop-size 128 --channels 64

Each configuration trains the `pixel` (L1) loss from scratch on the bundled training images with the
same global batch, in a fresh process (one plain process for N = 1, ``torchrun --standalone
--nproc_per_node=N`` otherwise), and reports the training loop's own pace: the steps after the first
logged one divided by their wall-clock time (start-up, imports and the first steps are left out).
Under torchrun every rank gets one thread (torchrun's default OMP_NUM_THREADS=1); the plain process
uses torch's default thread count, and is also run with one thread (``N = 1, 1 thread``) for
reference. The configurations are run in interleaved rounds (``--rounds``, default 3) and each figure
is the median over rounds, with the range, so that load from other work on the machine shows and
partly cancels; the load average at the start and end is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(args: argparse.Namespace) -> None:
    """One rank (or the single process): train and print the curve's step times as JSON (rank 0)."""
    import torch

    from psychovis.sr.data import load_dataset
    from psychovis.sr.distributed import world
    from psychovis.sr.training import TrainConfig, train

    images, _ = load_dataset(None, 3, min_size=args.crop_size)
    config = TrainConfig(
        loss="pixel",
        iterations=args.steps,
        batch_size=args.batch_size,
        crop_size=args.crop_size,
        channels=args.channels,
        residual_blocks=args.residual_blocks,
        log_every=args.log_every,
        upsampler="resize_conv",
    )
    with world(torch.device(args.device)) as here:
        _, curve = train(
            config, images, progress=False, world=here, channels_last=args.channels_last, autocast=args.autocast
        )
        if here.is_main:
            print(json.dumps({"steps": curve["step"].tolist(), "seconds": curve["seconds"].tolist(),
                              "threads": torch.get_num_threads(), "ranks": here.size}))  # fmt: skip


def measure(processes: int, args: argparse.Namespace, threads: int | None = None) -> dict[str, float]:
    """Run one configuration in fresh processes and return its pace."""
    script = [str(Path(__file__).resolve()), "--worker", *sys.argv[1:]]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TQDM_DISABLE": "1"}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    if processes == 1:
        command = [sys.executable, *script]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
        command += script
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"N={processes} failed:\n{result.stderr[-3000:]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    steps, seconds = report["steps"], report["seconds"]
    pace = (steps[-1] - steps[0]) / (seconds[-1] - seconds[0])
    return {"steps_per_s": pace, "crops_per_s": pace * args.batch_size, "wall_s": wall, "threads": report["threads"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--log-every", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop-size", type=int, default=48)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--residual-blocks", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--autocast", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    print(
        f"pixel loss, global batch {args.batch_size} x {args.crop_size}px, {args.channels} channels, "
        f"{args.residual_blocks} blocks, {args.steps} steps on {args.device}; load {os.getloadavg()[0]:.1f}"
    )
    configurations = [("N = 1, 1 thread", 1, 1)] if args.device == "cpu" else []
    configurations += [(f"N = {n}", n, None) for n in args.processes]
    paces: dict[str, list[float]] = {name: [] for name, _, _ in configurations}
    threads: dict[str, int] = {}
    for _ in range(args.rounds):
        for name, processes, thread_count in configurations:
            figures = measure(processes, args, thread_count)
            paces[name].append(figures["steps_per_s"])
            threads[name] = int(figures["threads"])
    medians = {name: statistics.median(values) for name, values in paces.items()}
    base = medians.get("N = 1") or next(iter(medians.values()))
    print(f"{'':18} {'steps/s':>8} {'range':>13} {'crops/s':>8} {'vs N=1':>7} {'threads/rank':>12}")
    for name, pace in medians.items():
        spread = f"{min(paces[name]):.2f}-{max(paces[name]):.2f}"
        print(
            f"{name:18} {pace:8.2f} {spread:>13} {pace * args.batch_size:8.1f} {pace / base:7.2f} {threads[name]:12d}"
        )
    print(f"load at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
