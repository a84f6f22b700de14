"""Memory estimates checked before a stage allocates: refuse with the numbers instead of dying later.

Sizes that pass validation one by one can still ask for far more memory than the machine has
(``stimuli.size: 1024`` with 2,000 frequencies is ~100 GB of rendered gratings; ``features.batch_size:
4096`` at 1024 px is ~1 TB of activations). Python then dies with a ``MemoryError`` (or the kernel
kills it) after minutes of work, possibly halfway through writing outputs. The estimates here are
deliberately simple upper bounds (bytes per pixel of the float64 rendering, the two largest
consecutive activations of the backbone); a stage refuses when one exceeds the memory available.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from psychovis.errors import ParamsError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from psychovis.backbones import FeatureExtractor

RENDER_BYTES_PER_PIXEL = 48
"""Peak bytes per pixel of one rendered grating (float64 intermediates + the float32 RGB image)."""
TABLE_BYTES_PER_RESPONSE = 64
"""Bytes per (stimulus, map) response: the float32 matrix plus its row in the tidy DataFrame/Parquet."""
HEADROOM = 0.8
"""Share of the available memory an estimate may use (the interpreter and libraries need the rest)."""


class ResourceError(ParamsError):
    """A request that passes validation but needs more memory than is available."""


def available_memory(device: str | torch.device = "cpu") -> int:
    """Bytes of memory available now: free GPU memory for CUDA, else the host's (cgroup limit included).

    Args:
        device: where the allocation would happen.
    """
    if str(device).startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    available = _meminfo_available()
    limit = _cgroup_room()
    return min(available, limit) if limit is not None else available


def _meminfo_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: do not refuse


def _cgroup_room() -> int | None:
    """Bytes left under a cgroup v2 memory limit, if one is set (containers)."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        current = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        return max(int(limit) - current, 0)
    except (OSError, ValueError):
        return None


def _gb(value: float) -> str:
    return f"{value / 1e9:.1f} GB" if value >= 1e8 else f"{value / 1e6:.0f} MB"


def require(what: str, needed: int, fix: str, device: str | torch.device = "cpu", available: int | None = None) -> None:
    """Refuse ``needed`` bytes when they exceed :data:`HEADROOM` of the available memory.

    Args:
        what: what would be allocated, in words (named in the message).
        needed: the estimate in bytes.
        fix: which params to reduce.
        device: where it would be allocated.
        available: the memory available (default: measured now).

    Raises:
        ResourceError: with the estimate, the memory available and ``fix``.
    """
    available = available_memory(device) if available is None else available
    if needed > HEADROOM * available:
        raise ResourceError(
            f"{what} needs about {_gb(needed)} of memory, but only {_gb(available)} is available; reduce {fix}"
        )


def check_stimuli(count: int, size: int, available: int | None = None) -> None:
    """The `stimuli` stage renders ``count`` gratings of ``size`` x ``size`` px at once (the contact sheet).

    Raises:
        ResourceError: past the available memory, naming ``stimuli.size`` and the frequencies.
    """
    require(
        f"rendering {count:,} gratings of {size}x{size} px",
        count * size * size * RENDER_BYTES_PER_PIXEL,
        "stimuli.size or the number of frequencies (raise stimuli.frequency_step_cpd)",
        available=available,
    )


def _out_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1, ceil: bool = False) -> int:
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    return (-(-span // stride) if ceil else span // stride) + 1


def _pair(value: int | tuple[int, ...]) -> int:
    return value[0] if isinstance(value, tuple) else int(value)


def activation_plan(body: nn.Sequential, size: int) -> tuple[int, int]:
    """``(peak_floats, final_side)`` of one ``size`` x ``size`` image through ``body`` (shapes only).

    ``peak_floats`` is the largest input + output of any module (what inference holds at once).

    Raises:
        ParamsError: the image shrinks to nothing before the last module (too small for the backbone).
    """
    from torch import nn

    channels, side, peak = 3, size, 0
    for index, module in enumerate(body):
        before = channels * side * side
        if isinstance(module, nn.Conv2d):
            side = _out_size(
                side, _pair(module.kernel_size), _pair(module.stride), _pair(module.padding), _pair(module.dilation)
            )
            channels = module.out_channels
        elif isinstance(module, nn.MaxPool2d | nn.AvgPool2d):
            stride = module.stride if module.stride is not None else module.kernel_size
            side = _out_size(
                side,
                _pair(module.kernel_size),
                _pair(stride),
                _pair(module.padding),
                _pair(getattr(module, "dilation", 1)),
                bool(module.ceil_mode),
            )
        if side < 1:
            raise ParamsError(f"shrinks to nothing at module {index} ({type(module).__name__})")
        peak = max(peak, before + channels * side * side)
    return peak, side


def check_probe(
    extractor: FeatureExtractor,
    size: int,
    batch_size: int,
    stimuli: int,
    keys: tuple[str, str],
    device: str | torch.device = "cpu",
    available: int | None = None,
) -> None:
    """Check a probe run (``features``, ``atlas_features``) fits: input size and memory.

    Args:
        extractor: the truncated backbone and its recorded layers.
        size: the stimulus side in pixels.
        batch_size: stimuli per forward pass.
        stimuli: how many stimuli in all.
        keys: the params keys of ``(size, batch_size)``, named in the messages.
        device: where the forward passes run.
        available: the memory available (default: measured now).

    Raises:
        ParamsError: the stimulus is too small for the backbone's layers, or the batch's activations
            or the response table need more memory than is available (with the numbers).
    """
    size_key, batch_key = keys
    maps = sum(extractor.channels.values())
    try:
        peak_floats, _ = activation_plan(extractor.body, size)
    except ParamsError:
        minimum = extractor.min_size
        raise ParamsError(
            f"{size_key} = {size} px is too small for the backbone up to its deepest requested layer "
            f"(its pooling leaves nothing); raise {size_key} to at least {minimum} or probe shallower layers"
        ) from None
    per_image = peak_floats * 4 + size * size * RENDER_BYTES_PER_PIXEL
    require(
        f"a batch of {batch_size} stimuli of {size}x{size} px through the backbone",
        batch_size * per_image,
        f"{batch_key} or {size_key}",
        device=device,
        available=available,
    )
    require(
        f"the response table ({stimuli:,} stimuli x {maps:,} maps)",
        stimuli * maps * TABLE_BYTES_PER_RESPONSE,
        "the number of stimuli or of probed layers",
        available=available,
    )
