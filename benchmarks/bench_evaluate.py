"""Time the `evaluate` scoring path on the default held-out images, and profile it.

    python benchmarks/bench_evaluate.py --models 4 --threads 1           # seconds and CPU seconds
    python benchmarks/bench_evaluate.py --models 2 --max-size 192 --profile
    python benchmarks/bench_evaluate.py --models 4 --out scores.parquet   # keep the table to compare versions

The models are untrained SRResNets of the default architecture (seeded), so no pipeline run is
needed; the cost of scoring does not depend on the weights. Wall time on a shared machine depends on
the load (printed); the CPU seconds (``time.process_time``) are the figure to compare.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time

import torch

from psychovis.names import JUDGES, LOSSES
from psychovis.sr.data import load_dataset
from psychovis.sr.evaluation import score, super_resolve_all
from psychovis.sr.model import SRResNet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=18, help="fine-tuned models (losses x seeds 0-2), default 18")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-size", type=int, default=None, help="centre crop of the held-out images")
    parser.add_argument("--profile", action="store_true", help="print the 30 costliest calls of the scoring")
    parser.add_argument("--out", default=None, help="write the per-image table here (Parquet)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    keys = [(loss, seed) for loss in LOSSES for seed in (0, 1, 2)][: args.models]
    models = {key: SRResNet(4, 32, 4, "resize_conv").eval() for key in keys}
    warm = {"pretrain": SRResNet(4, 32, 4, "resize_conv").eval()}
    _, images = load_dataset(None, 3, 48)
    print(f"images { ({name: image.shape for name, image in images.items()}) }, load {os.getloadavg()[0]:.1f}")
    start, cpu = time.perf_counter(), time.process_time()
    references, outputs = super_resolve_all(models, images, 4, args.max_size, seedless=warm)
    resolved = time.perf_counter()
    profiler = cProfile.Profile() if args.profile else None
    if profiler:
        profiler.enable()
    per_image, _ = score(references, outputs, list(JUDGES), 4, 4, 8, progress=False)
    if profiler:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
    end = time.perf_counter()
    print(
        f"threads {torch.get_num_threads()}, models {len(models)}: super-resolution {resolved - start:.1f} s, "
        f"scoring {end - resolved:.1f} s, CPU {time.process_time() - cpu:.1f} s, load {os.getloadavg()[0]:.1f}"
    )
    if args.out:
        per_image.to_parquet(args.out)


if __name__ == "__main__":
    main()
