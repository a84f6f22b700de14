"""Benchmark of psychovis: the `features` probe, the psychovisual loss, and the DVC pipeline.

Run it with ``make bench`` (or ``.venv/bin/python benchmarks/bench.py``):

    python benchmarks/bench.py                 # default: < 10 minutes on a 2-core CPU
    python benchmarks/bench.py --quick         # smoke test: 1-2 minutes, small sizes
    python benchmarks/bench.py --full          # also peak memory of every stage (reruns the whole
                                               # pipeline in a scratch copy under /usr/bin/time -v)
    python benchmarks/bench.py --json          # also write the figures to benchmarks/results.json
    python benchmarks/bench.py --repro-seconds 1234   # report the time of your last `make repro`

It prints one table; every figure in it is measured in this run (nothing is cached or copied from
elsewhere, and what was not measured says so). Wall-clock times are medians of several rounds
in which the candidates are interleaved (the two of a target ratio back to back, in alternating
order); each ratio is the median over rounds of the ratio of two candidates timed back to back,
so that load from other work on the machine largely cancels. The load average at the start and
end is printed to judge the noise; on a shared machine, compare the CPU-time ratios too. When
CUDA is present the device sections run on the CPU and then on CUDA.

What each figure means:

features (the `features` stage: gratings of 227 px through all 13 ReLU layers of VGG-16)
    map_responses          stimuli/s of ``psychovis.probe.map_responses``, the real stage path:
                           render each batch, one forward pass, spatial means on the device
                           (default: one batch of 16 stimuli per round, 5 rounds).
    bare forward           stimuli/s of the truncated VGG-16 ``nn.Sequential`` alone on the same
                           batches, rendered beforehand: the limit the probe can approach.
    peer: per-image hooks  stimuli/s of the common alternative: one image at a time, a forward
                           hook on every ReLU copying the full activation map to numpy, means
                           taken there (on the first 4 of those stimuli per round: it is per image).
    ratio vs bare          map_responses / bare forward (target >= 0.90: the probe's own overhead
                           -- rendering, reductions, host copies -- is under 10 %).
    speedup vs peer        map_responses / peer, per stimulus.
    ..., CPU time          the same ratio in this process's CPU seconds (``time.process_time``):
                           a cross-check that other jobs on a shared machine barely disturb
                           (also given for the loss).
    max |diff| ...         agreement of the probe with ``FeatureExtractor.forward`` followed by
                           spatial means (0: bit-identical) and with the peer's numpy means.
    time/stimulus @ Nx,    map_responses over 1x, 4x and 16x as many stimuli, each in a fresh
    peak memory @ Nx       subprocess (after a one-stimulus warm-up whose memory high-water mark
                           is then reset): time per stimulus, and the peak resident set size of
                           the whole process (CPU, ``VmHWM``; the note gives the RSS before the
                           run, so the difference is the probe's working memory) or
                           ``torch.cuda.max_memory_allocated`` (CUDA). Responses are reduced on the
                           fly, so the peak depends on the batch size, not on the number of
                           stimuli: "growth 4x -> 16x" should be ~1.0. Default: 4, 16 and 64
                           stimuli at batch 16 (1x is a partial batch, 4x exactly one, 16x four);
                           --quick: 1, 4 and 16 at batch 4.
loss (one training step: forward and backward through the loss into the input image)
    step time              median milliseconds per step of ``PsychovisualLoss`` with the VFSS
                           weights (``data/weights/vfss.safetensors``, or random weights at relu3_2
                           when the pipeline has not produced them), of the plain VGG loss at the
                           same layers (uniform weights), and of ``lpips.LPIPS(net="vgg")``.
    ratios                 psychovisual / plain VGG (target <= 1.05: the weights are free), and
                           psychovisual / LPIPS-VGG.
pipeline
    no-op dvc repro        seconds of ``dvc repro`` when ``dvc status`` says everything is up to
                           date (target <= 5 s); skipped, and said so, otherwise.
    peak RSS per stage     ``--full`` only: each stage command of dvc.yaml run in dependency order
                           in a scratch copy of the repository under ``/usr/bin/time -v`` (your
                           workspace and DVC cache are not touched).
    last make repro        the seconds you pass with ``--repro-seconds``; not measured here.

The "targets" block at the end lists every target with its measured value and PASS/FAIL.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from psychovis import gratings, probe
from psychovis.backbones import FeatureExtractor
from psychovis.distances.loss import PsychovisualLoss
from psychovis.feature_weights import FeatureWeights

ROOT = Path(__file__).resolve().parents[1]
VFSS_WEIGHTS = ROOT / "data" / "weights" / "vfss.safetensors"
DEFAULT_JSON = ROOT / "benchmarks" / "results.json"
MIB = 1024.0 * 1024.0

FEATURES_TARGET = 0.90
LOSS_TARGET = 1.05
REPRO_TARGET_S = 5.0
FLAT_MEMORY_TARGET = 1.10


@dataclass(frozen=True)
class Sizes:
    """Problem sizes of one mode (default or ``--quick``)."""

    compare_stimuli: int  # stimuli per round of the map_responses / bare comparison (one batch)
    peer_stimuli: int  # stimuli per round of the peer (one image at a time, so fewer suffice)
    batch_size: int  # features batch size (the stage's default is 16)
    rounds: int  # interleaved timed rounds of the comparison (median taken)
    scale_base: int  # stimuli at 1x; 4x and 16x follow
    loss_batch: int
    loss_crop: int
    loss_warmup: int
    loss_repeats: int


DEFAULT_SIZES = Sizes(16, 4, 16, 5, 4, 16, 96, 1, 3)
QUICK_SIZES = Sizes(4, 1, 4, 3, 1, 4, 96, 1, 2)
STIMULUS_SIZE = 227


@dataclass
class Row:
    """One figure of the table; ``value`` is None when it was not measured (``note`` says why)."""

    section: str
    figure: str
    device: str
    value: float | None
    unit: str
    note: str = ""
    digits: int = 3


@dataclass
class Target:
    """A performance target and how this run fared against it."""

    name: str
    device: str
    measured: float | None
    threshold: float
    higher_is_better: bool
    unit: str = ""

    @property
    def verdict(self) -> str:
        """PASS, FAIL, or "not measured"."""
        if self.measured is None:
            return "not measured"
        ok = self.measured >= self.threshold if self.higher_is_better else self.measured <= self.threshold
        return "PASS" if ok else "FAIL"


@dataclass
class Report:
    """Everything measured in one run."""

    meta: dict[str, Any] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)

    def add(self, *args: Any, **kwargs: Any) -> Row:
        """Append a :class:`Row` and return it."""
        row = Row(*args, **kwargs)
        self.rows.append(row)
        return row


# ----------------------------------------------------------------------------------------------
# helpers


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def load_average() -> str:
    """The 1/5/15-minute load averages, or "n/a"."""
    try:
        return "/".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "n/a"


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work so wall-clock timings are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(function: Callable[[], object], device: torch.device) -> float:
    """Seconds one call of ``function`` takes, device work included."""
    synchronize(device)
    started = time.perf_counter()
    function()
    synchronize(device)
    return time.perf_counter() - started


def interleaved(
    candidates: dict[str, Callable[[], object]], rounds: int, device: torch.device
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall-clock and process-CPU seconds of each candidate in each of ``rounds`` rounds.

    The first two candidates (the pair whose ratio is the target) run back to back, in
    alternating order; the others follow, so each of the pair comes first equally often.
    CPU time counts only this process's own work, so on a shared machine it is less disturbed
    by other jobs than wall-clock time (on CUDA it is mostly idle waiting and means little).
    """
    names = list(candidates)
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        pair = names[:2] if round_index % 2 == 0 else names[:2][::-1]
        for name in pair + names[2:]:
            cpu_started = time.process_time()
            wall[name].append(timed(candidates[name], device))
            cpu[name].append(time.process_time() - cpu_started)
    return wall, cpu


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over rounds of ``numerator[i] / denominator[i]``: pairs measured back to back, so
    load from other work, which drifts over seconds, largely cancels."""
    return statistics.median(a / b for a, b in zip(numerator, denominator, strict=True))


def plural(count: int) -> str:
    """``1 stimulus``, ``4 stimuli``."""
    return f"{count} stimulus" if count == 1 else f"{count} stimuli"


def make_stimuli(count: int) -> Any:
    """``count`` concentric gratings of 227 px spanning the paper's frequency range."""
    return gratings.stimulus_table(size=STIMULUS_SIZE, frequencies_cpd=np.linspace(0.1, 29.6, count))


def reset_peak_rss() -> bool:
    """Reset this process's RSS high-water mark (Linux ``clear_refs``); False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mib() -> float:
    """This process's RSS high-water mark in MiB: ``VmHWM`` on Linux, else ``getrusage``.

    ``getrusage``'s ``ru_maxrss`` is not used on Linux: a fork+exec child inherits its parent's
    high-water mark there (the kernel keeps the pre-exec peak in the signal struct), and
    ``clear_refs`` does not reset that part, so every worker would report the parent's peak.
    """
    with contextlib.suppress(OSError):
        found = re.search(r"VmHWM:\s+(\d+)\s+kB", Path("/proc/self/status").read_text())
        if found:
            return int(found.group(1)) / 1024.0
    scale = 1.0 if sys.platform == "darwin" else 1024.0  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / MIB


def current_rss_mib() -> float | None:
    """This process's resident set size now, in MiB (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        found = re.search(r"VmRSS:\s+(\d+)\s+kB", Path("/proc/self/status").read_text())
        if found:
            return int(found.group(1)) / 1024.0
    return None


@contextlib.contextmanager
def quiet_warnings() -> Iterator[None]:
    """Silence library deprecation chatter (torchvision's ``pretrained=`` warning in lpips)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ----------------------------------------------------------------------------------------------
# 1. features


def peer_responses(extractor: FeatureExtractor, stimuli: Any, device: torch.device) -> np.ndarray:
    """The peer approach: per image, hooks copy every ReLU map to numpy, means taken in numpy.

    Returns:
        ``(n_stimuli, n_maps)`` float32, columns in the order of :func:`probe.map_responses`.
    """
    captured: dict[str, np.ndarray] = {}

    def hook_for(layer: str) -> Callable[..., None]:
        def hook(_module: torch.nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            captured[layer] = np.array(output.detach().cpu().numpy(), copy=True)

        return hook

    handles = [
        extractor.body[extractor.spec.layers[layer]].register_forward_hook(hook_for(layer))
        for layer in extractor.layers
    ]
    rows = []
    try:
        with torch.no_grad():
            for index in range(len(stimuli)):
                image = gratings.render(stimuli.iloc[index : index + 1], device=device)
                extractor.body((image - extractor.mean) / extractor.std)
                rows.append(np.concatenate([captured[layer][0].mean(axis=(1, 2)) for layer in extractor.layers]))
    finally:
        for handle in handles:
            handle.remove()
    return np.stack(rows).astype(np.float32)


def bench_features(report: Report, device: torch.device, sizes: Sizes) -> None:
    """Throughput of the probe vs the bare forward pass and the peer approach, then scaling."""
    name = device.type
    batch_size = sizes.batch_size
    extractor = FeatureExtractor("vgg16", "all")
    stimuli = make_stimuli(sizes.compare_stimuli)
    peer_stimuli = stimuli.iloc[: sizes.peer_stimuli]
    count = len(stimuli)

    # Warm-up: one stimulus through the probe (it moves the extractor to the device and, on CUDA,
    # to channels_last), the batches through FeatureExtractor.forward (the reference the probe's
    # results must equal), one image through the peer.
    probe.map_responses(extractor, stimuli.iloc[:1], batch_size, device, progress=False)
    batches = []
    for start in range(0, count, batch_size):
        batch = gratings.render(stimuli.iloc[start : start + batch_size], device=device)
        if device.type == "cuda":
            batch = batch.to(memory_format=torch.channels_last)
        batches.append(batch)
    with torch.inference_mode():
        reference = np.concatenate(
            [
                torch.cat([maps.mean(dim=(2, 3)) for maps in extractor(batch).values()], dim=1).float().cpu().numpy()
                for batch in batches
            ]
        )
    peer_responses(extractor, stimuli.iloc[:1], device)

    def bare() -> None:
        with torch.inference_mode():
            for batch in batches:
                extractor.body(batch)

    outputs: dict[str, np.ndarray] = {}

    def probed() -> None:
        outputs["probe"] = probe.map_responses(extractor, stimuli, batch_size, device, progress=False)[0]

    def peer() -> None:
        outputs["peer"] = peer_responses(extractor, peer_stimuli, device)

    samples, cpu = interleaved({"probe": probed, "bare": bare, "peer": peer}, sizes.rounds, device)
    counts = {"probe": count, "bare": count, "peer": len(peer_stimuli)}
    rates = {key: counts[key] / statistics.median(values) for key, values in samples.items()}
    how = f"{plural(count)}, batch {batch_size}, median of {sizes.rounds}"
    report.add("features", "map_responses (render+forward+means)", name, rates["probe"], "stimuli/s", how)
    report.add("features", "bare truncated VGG-16 forward", name, rates["bare"], "stimuli/s", "pre-rendered batches")
    peer_how = f"{plural(len(peer_stimuli))} one at a time, median of {sizes.rounds}"
    report.add("features", "peer: per-image hooks -> numpy", name, rates["peer"], "stimuli/s", peer_how)
    # Paired per-round ratios of rates (stimuli per second of each, measured back to back).
    probe_per = [seconds / count for seconds in samples["probe"]]
    ratio = paired_ratio([seconds / count for seconds in samples["bare"]], probe_per)
    speedup = paired_ratio([seconds / len(peer_stimuli) for seconds in samples["peer"]], probe_per)
    paired = f"median of {sizes.rounds} back-to-back pairs"
    report.add("features", "ratio map_responses / bare", name, ratio, "x", f"target >= {FEATURES_TARGET:.2f}; {paired}")
    report.add("features", "speedup map_responses / peer", name, speedup, "x", paired)
    if device.type == "cpu":
        cpu_ratio = paired_ratio(cpu["bare"], cpu["probe"])
        report.add("features", "ratio map_responses / bare, CPU time", name, cpu_ratio, "x", "cross-check under load")
    report.targets.append(Target("features: map_responses / bare forward", name, ratio, FEATURES_TARGET, True, "x"))
    report.add(
        "features",
        "max |diff| vs FeatureExtractor.forward",
        name,
        float(np.abs(outputs["probe"] - reference).max()),
        "",
        "0 = bit-identical",
        digits=2,
    )
    scale = float(np.abs(reference).max())
    report.add(
        "features",
        "max |diff| vs peer (relative)",
        name,
        float(np.abs(outputs["probe"][: len(peer_stimuli)] - outputs["peer"]).max()) / scale,
        "",
        "float32 numpy means",
        digits=2,
    )

    # Scaling, each size in a fresh process so the memory high-water mark belongs to that run.
    peaks: dict[int, float] = {}
    for factor in (1, 4, 16):
        stimuli_count = sizes.scale_base * factor
        result = run_scale_worker(stimuli_count, batch_size, device)
        label = f"@ {factor}x ({plural(stimuli_count)})"
        if "error" in result:
            note = f"not measured: {result['error']}"
            report.add("features", f"time per stimulus {label}", name, None, "s", note)
            report.add("features", f"peak memory {label}", name, None, "MiB", note)
            continue
        per_stimulus = result["seconds"] / stimuli_count
        report.add(
            "features", f"time per stimulus {label}", name, per_stimulus, "s", f"total {result['seconds']:.1f} s"
        )
        peaks[factor] = result["peak_mib"]
        what = "RSS high-water (VmHWM)" if device.type == "cpu" else "cuda max_memory_allocated"
        if device.type == "cpu" and result.get("baseline_mib") is None:
            what += ", setup included (high-water mark not resettable here)"
        baseline = result.get("baseline_mib")
        note = what + (f"; {baseline:.0f} MiB before the run" if baseline is not None else "")
        report.add("features", f"peak memory {label}", name, result["peak_mib"], "MiB", note)
    growth = peaks[16] / peaks[4] if 4 in peaks and 16 in peaks else None
    report.add(
        "features", "peak memory growth 4x -> 16x", name, growth, "x", "flat = 1.0 (responses reduced on the fly)"
    )
    report.targets.append(Target("features: peak memory flat (16x / 4x)", name, growth, FLAT_MEMORY_TARGET, False, "x"))


def run_scale_worker(stimuli_count: int, batch_size: int, device: torch.device) -> dict[str, Any]:
    """Run :func:`scale_worker` in a fresh interpreter and return its JSON result (or an error)."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker-scale",
        str(stimuli_count),
        "--batch-size",
        str(batch_size),
        "--device",
        device.type,
    ]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if completed.returncode != 0:
        tail = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"worker failed ({completed.returncode}): {tail}"}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def scale_worker(stimuli_count: int, batch_size: int, device_name: str) -> None:
    """Child-process side of the scaling runs: time map_responses and print peak memory as JSON."""
    device = torch.device(device_name)
    extractor = FeatureExtractor("vgg16", "all")
    stimuli = make_stimuli(stimuli_count)
    probe.map_responses(extractor, stimuli.iloc[:1], batch_size, device, progress=False)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device) / MIB
    else:
        reset = reset_peak_rss()
        baseline = current_rss_mib() if reset else None
    seconds = timed(lambda: probe.map_responses(extractor, stimuli, batch_size, device, progress=False), device)
    peak = torch.cuda.max_memory_allocated(device) / MIB if device.type == "cuda" else peak_rss_mib()
    print(json.dumps({"seconds": seconds, "peak_mib": peak, "baseline_mib": baseline}))


# ----------------------------------------------------------------------------------------------
# 2. loss


def bench_loss(report: Report, device: torch.device, sizes: Sizes) -> None:
    """One training step of the VFSS-weighted loss vs the plain VGG loss vs LPIPS-VGG."""
    import lpips

    name = device.type
    if VFSS_WEIGHTS.is_file():
        weights = FeatureWeights.load(VFSS_WEIGHTS)
        source = VFSS_WEIGHTS.relative_to(ROOT).as_posix()
    else:
        generator = torch.Generator().manual_seed(0)
        weights = FeatureWeights("vgg16", "vfss", {"relu3_2": torch.rand(256, generator=generator) + 0.01})
        source = "random FeatureWeights at relu3_2 (no exported weights)"
    weighted = PsychovisualLoss(weights).to(device)
    plain = PsychovisualLoss(layers=weighted.layers).to(device)
    with quiet_warnings():
        reference = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False).to(device).eval()
    for parameter in reference.parameters():
        parameter.requires_grad_(False)  # gradients flow into the input only, as for the others

    generator = torch.Generator().manual_seed(0)

    def images(batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (batch, 3, sizes.loss_crop, sizes.loss_crop)
        return torch.rand(shape, generator=generator).to(device), torch.rand(shape, generator=generator).to(device)

    def candidates(start: torch.Tensor, target: torch.Tensor) -> dict[str, Callable[[], None]]:
        def step(criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable[[], None]:
            def run() -> None:
                prediction = start.clone().requires_grad_(True)
                criterion(prediction, target).mean().backward()

            return run

        return {
            "weighted": step(weighted),
            "plain": step(plain),
            "lpips": step(lambda prediction, target: reference(prediction, target, normalize=True)),
        }

    # Warm-up (discarded): lazy initialisation and kernel selection. On the CPU a batch of 2 does
    # it at an eighth of the cost; the timed batches then differ only in size.
    warm_batch = sizes.loss_batch if device.type == "cuda" else min(2, sizes.loss_batch)
    interleaved(candidates(*images(warm_batch)), sizes.loss_warmup, device)
    samples, cpu = interleaved(candidates(*images(sizes.loss_batch)), sizes.loss_repeats, device)
    medians = {key: statistics.median(values) for key, values in samples.items()}
    layers = ",".join(weighted.layers)
    how = f"batch {sizes.loss_batch}, {sizes.loss_crop}x{sizes.loss_crop}, median of {sizes.loss_repeats}"
    report.add("loss", f"step: PsychovisualLoss VFSS ({layers})", name, medians["weighted"] * 1e3, "ms", how)
    report.add("loss", f"step: plain VGG loss ({layers})", name, medians["plain"] * 1e3, "ms", "uniform weights")
    report.add("loss", "step: lpips.LPIPS(net='vgg')", name, medians["lpips"] * 1e3, "ms", "relu1_2..relu5_3")
    ratio = paired_ratio(samples["weighted"], samples["plain"])
    paired = f"median of {sizes.loss_repeats} back-to-back pairs"
    report.add("loss", "ratio psychovisual / plain VGG", name, ratio, "x", f"target <= {LOSS_TARGET:.2f}; {paired}")
    if device.type == "cpu":
        cpu_ratio = paired_ratio(cpu["weighted"], cpu["plain"])
        report.add("loss", "ratio psychovisual / plain VGG, CPU time", name, cpu_ratio, "x", "cross-check under load")
    lpips_ratio = paired_ratio(samples["weighted"], samples["lpips"])
    report.add("loss", "ratio psychovisual / LPIPS-VGG", name, lpips_ratio, "x", paired)
    report.add("loss", "weights", name, None, "", source)
    report.targets.append(Target("loss: psychovisual / plain VGG step", name, ratio, LOSS_TARGET, False, "x"))


# ----------------------------------------------------------------------------------------------
# 3. pipeline


def dvc_command() -> str:
    """The dvc executable next to this interpreter, else the one on PATH."""
    beside = Path(sys.executable).parent / "dvc"
    return str(beside) if beside.exists() else (shutil.which("dvc") or "dvc")


def last_line(text: str) -> str:
    """The last non-empty line of ``text`` (for one-line error notes)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def bench_pipeline(report: Report, full: bool, repro_seconds: float | None) -> None:
    """No-op ``dvc repro``, per-stage peak memory (``--full``), and the user's ``make repro`` time."""
    dvc = dvc_command()
    noop: float | None = None
    note: str
    try:
        status = subprocess.run([dvc, "status", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        status = None
        note = "not measured: `dvc status` took over 300 s"
    if status is not None and status.returncode != 0:
        message = status.stderr + status.stdout
        busy = "busy" in message or "lock" in message.lower()
        note = (
            "skipped: another dvc process holds the lock"
            if busy
            else f"skipped: dvc status failed: {last_line(message)}"
        )
    elif status is not None:
        try:
            stale = json.loads(status.stdout.strip().splitlines()[-1]) if status.stdout.strip() else {}
        except (ValueError, IndexError):
            stale = {"?": "unparsable"}
        if stale:
            names = sorted(stale)
            shown = ", ".join(names[:3]) + (f", +{len(names) - 3} more" if len(names) > 3 else "")
            note = f"not up to date, skipped (stale: {shown}; run `make repro` first)"
        else:
            started = time.perf_counter()
            try:
                repro = subprocess.run([dvc, "repro"], cwd=ROOT, capture_output=True, text=True, timeout=600)
                seconds = time.perf_counter() - started
                ran = re.findall(r"Running stage '([^']+)'", repro.stdout)
                if repro.returncode != 0:
                    note = f"dvc repro failed: {last_line(repro.stderr + repro.stdout)}"
                elif ran:
                    note = f"not a no-op: stages changed meanwhile and ran ({', '.join(ran)})"
                else:
                    noop, note = seconds, "pipeline up to date"
            except subprocess.TimeoutExpired:
                note = "not measured: dvc repro took over 600 s"
    report.add("pipeline", "no-op `dvc repro`", "-", noop, "s", note)
    report.targets.append(Target("pipeline: no-op dvc repro", "-", noop, REPRO_TARGET_S, False, "s"))

    if full:
        for stage, peak, note in stage_peaks():
            report.add("pipeline", f"peak RSS: {stage}", "-", peak, "MiB", note)
    else:
        report.add(
            "pipeline",
            "peak RSS per stage",
            "-",
            None,
            "MiB",
            "not measured; run with --full (reruns every stage under /usr/bin/time -v in a scratch copy)",
        )
    if repro_seconds is None:
        report.add("pipeline", "last full `make repro`", "-", None, "s", "not measured; pass --repro-seconds S")
    else:
        report.add("pipeline", "last full `make repro`", "-", repro_seconds, "s", "user-supplied (--repro-seconds)")


def pipeline_stages() -> list[tuple[str, str]]:
    """Every stage of dvc.yaml as ``(name, command)``, dependencies first, as DVC resolves them
    (``matrix``/``foreach`` expanded, ``${...}`` interpolated from params.yaml)."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        stages = [stage for stage in nx.dfs_postorder_nodes(graph) if getattr(stage, "cmd", None)]
        return [
            (stage.addressing, stage.cmd if isinstance(stage.cmd, str) else " && ".join(stage.cmd)) for stage in stages
        ]


def stage_peaks() -> list[tuple[str, float | None, str]]:
    """Run every stage in a scratch copy under ``/usr/bin/time -v``; its peak RSS and wall time."""
    time_binary = Path("/usr/bin/time")
    results: list[tuple[str, float | None, str]] = []
    if not time_binary.exists():
        return [("all stages", None, "not measured: /usr/bin/time is missing")]
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    with tempfile.TemporaryDirectory(prefix="psychovis-bench-") as scratch:
        for item in ("stages", "src", "params.yaml", "dvc.yaml"):
            source = ROOT / item
            if source.is_dir():
                shutil.copytree(source, Path(scratch) / item, ignore=shutil.ignore_patterns("__pycache__"))
            elif source.exists():
                shutil.copy2(source, Path(scratch) / item)
        for stage, command in pipeline_stages():
            print(f"[bench] --full: running stage {stage}: {command}", file=sys.stderr, flush=True)
            completed = subprocess.run(
                [str(time_binary), "-v", "sh", "-c", command],
                cwd=scratch,
                env=environment,
                capture_output=True,
                text=True,
            )
            peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", completed.stderr)
            wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", completed.stderr)
            if completed.returncode != 0 or peak is None:
                error = last_line(completed.stderr.split("Command exited with non-zero status")[0])
                results.append((stage, None, f"not measured: stage failed ({completed.returncode}): {error}"))
                continue
            results.append((stage, int(peak.group(1)) / 1024.0, f"wall {wall.group(1) if wall else '?'}"))
    return results


# ----------------------------------------------------------------------------------------------
# output


def format_value(row: Row) -> str:
    """A figure with ``row.digits`` significant digits, or "not measured"."""
    if row.value is None:
        return "not measured" if row.unit else "-"
    if row.value == 0:
        return "0"
    if abs(row.value) >= 10 ** (row.digits - 1):
        return f"{row.value:.0f}"
    return f"{row.value:.{row.digits}g}"


def render_table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain-text table with aligned columns (numbers right-aligned)."""
    widths = [max(len(header), *(len(row[i]) for row in rows)) for i, header in enumerate(headers)]

    def line(cells: list[str]) -> str:
        out = []
        for cell, width in zip(cells, widths, strict=True):
            numeric = bool(re.fullmatch(r"[-+0-9.eE]+", cell)) and cell != "-"
            out.append(cell.rjust(width) if numeric else cell.ljust(width))
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def print_report(report: Report) -> None:
    """The header lines, the table, and the targets block."""
    for key, value in report.meta.items():
        print(f"{key:>16}: {value}")
    print()
    table = [[row.section, row.figure, row.device, format_value(row), row.unit, row.note] for row in report.rows]
    print(render_table(["section", "figure", "device", "value", "unit", "note"], table))
    print()
    print("targets")
    targets = []
    for target in report.targets:
        sign = ">=" if target.higher_is_better else "<="
        measured = "not measured" if target.measured is None else f"{target.measured:.3f}"
        targets.append([target.name, target.device, measured, f"{sign} {target.threshold:g}", target.verdict])
    print(render_table(["target", "device", "measured", "threshold", "result"], targets))


def write_json(report: Report, path: Path) -> None:
    """The same figures as JSON."""
    payload = {
        "meta": report.meta,
        "rows": [asdict(row) for row in report.rows],
        "targets": [{**asdict(target), "result": target.verdict} for target in report.targets],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")


# ----------------------------------------------------------------------------------------------
# main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(description="psychovis benchmark: features probe, loss, pipeline")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes, 1-2 minutes (smoke test)")
    mode.add_argument("--full", action="store_true", help="also peak RSS of every stage (reruns the pipeline)")
    parser.add_argument(
        "--json", nargs="?", const=str(DEFAULT_JSON), default=None, metavar="PATH", help="also write JSON here"
    )
    parser.add_argument("--repro-seconds", type=float, default=None, help="time of your last full `make repro`")
    parser.add_argument("--cpu-only", action="store_true", help="skip the CUDA run even when CUDA is present")
    parser.add_argument("--worker-scale", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=16, help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run every section on every device and print the table."""
    args = parse_args(argv)
    if args.worker_scale is not None:
        scale_worker(args.worker_scale, args.batch_size, args.device)
        return
    sizes = QUICK_SIZES if args.quick else DEFAULT_SIZES
    devices = [torch.device("cpu")]
    if torch.cuda.is_available() and not args.cpu_only:
        devices.append(torch.device("cuda"))
    report = Report()
    report.meta = {
        "mode": "quick" if args.quick else ("full" if args.full else "default"),
        "cpu": f"{cpu_model()} ({os.cpu_count()} logical cores), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "load at start": load_average(),
    }
    load_at_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    started = time.perf_counter()
    for device in devices:
        for section, function in (("features", bench_features), ("loss", bench_loss)):
            print(f"[bench] {section} on {device.type} ...", file=sys.stderr, flush=True)
            section_started = time.perf_counter()
            function(report, device, sizes)
            print(f"[bench]   done in {time.perf_counter() - section_started:.0f} s", file=sys.stderr, flush=True)
    print("[bench] pipeline ...", file=sys.stderr, flush=True)
    bench_pipeline(report, args.full, args.repro_seconds)
    report.meta["load at end"] = load_average()
    with contextlib.suppress(OSError):
        if max(os.getloadavg()[0], load_at_start) > (os.cpu_count() or 1):
            report.meta["warning"] = (
                "load average above the number of cores: other work shared the CPU, wall-clock "
                "ratios are noisy (compare the CPU-time ratios)"
            )
    report.meta["benchmark took"] = f"{time.perf_counter() - started:.0f} s"
    print_report(report)
    if args.json:
        write_json(report, Path(args.json))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
