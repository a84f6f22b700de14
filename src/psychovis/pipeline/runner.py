"""The stage runner: what every stage script shares (params, device, MLflow run, one-line errors, exit codes).

A stage is one transaction (:func:`psychovis.io.stage_transaction`): if it fails, its outputs keep
their previous bytes. Whatever goes wrong, the user sees one line and exit code 2 (130 for
Ctrl-C); ``--debug`` or ``PSYCHOVIS_DEBUG=1`` shows the traceback.

A stage script is ``main(ctx)`` plus one call::

    def main(ctx: StageContext) -> None:
        p = ctx.params["vfss"]
        with ctx.run() as run:       # the MLflow run, logging the sections the stage was given
            ...

    if __name__ == "__main__":
        run_stage("vfss", main, sections=["vfss"])
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import re
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psychovis import io
from psychovis.errors import ParamsError, PsychovisError, one_line, quote
from psychovis.names import BACKBONES, DEVICES

if TYPE_CHECKING:
    import torch
from psychovis.pipeline import params as params_module
from psychovis.pipeline import params_trace, signals, tracking
from psychovis.pipeline.preflight import DEBUG_ENV, debug_requested, startup_checks


@dataclass
class StageContext:
    """What a stage script receives: its validated params, parsed arguments and the repo root.

    Attributes:
        stage: the stage's name (the MLflow run's ``stage`` tag).
        params: the validated sections the stage was given, by name.
        args: the parsed command line.
        root: the repository root (the working directory DVC runs stages in).
    """

    stage: str
    params: dict[str, dict[str, Any]]
    args: argparse.Namespace
    root: Path

    @property
    def logged_params(self) -> dict[str, dict[str, Any]]:
        """Every section the stage reads: logged to MLflow and hashed into the run's tags."""
        return dict(self.params)

    @cached_property
    def device(self) -> torch.device:
        """``base.device`` resolved (``auto``: CUDA when present, else CPU)."""
        return resolve_device(self.params["base"]["device"])

    def run(
        self, name: str | None = None, tags: Mapping[str, str] | None = None
    ) -> contextlib.AbstractContextManager[tracking.StageRun]:
        """The stage's MLflow run (named ``name``, default the stage), with :attr:`logged_params`."""
        return tracking.stage_run(self.stage, self.logged_params, self.root, run_name=name, extra_tags=tags)


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; ``cuda`` without a GPU is an error."""
    import torch  # only stages that compute pay for importing torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ParamsError("base.device is 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    if device not in DEVICES:
        raise ParamsError(f"base.device must be one of {list(DEVICES)}, got {quote(device)}")
    return torch.device(device)


THREADS_ENV = "OMP_NUM_THREADS"


def resolve_threads(threads: int | str, cpus: int | None = None, load: float | None = None) -> int:
    """``base.threads`` as a number: an integer as given; ``auto``: the CPUs this process may use
    minus the 1-minute load average (rounded), at least 1.

    Why not torch's default (every core): on a 2-core machine whose other core is busy, 2 threads
    made a fine-tune 10 to 30 times slower (230-667 s against 21.5 s idle), since each step waits
    for its slowest thread. ``auto`` backs off when the machine is busy; the default, 1, never
    collapses and gives the same float rounding on every machine (the thread count can change the
    last digits of a training run).
    """
    if threads != "auto":
        return int(threads)
    cpus = len(os.sched_getaffinity(0)) if cpus is None and hasattr(os, "sched_getaffinity") else cpus
    cpus = cpus or os.cpu_count() or 1
    load = os.getloadavg()[0] if load is None else load
    return max(1, min(cpus, cpus - round(load)))


def apply_threads(threads: int | str) -> int:
    """Set torch's intra-op threads to :func:`resolve_threads` (or, before torch is imported, ``OMP_NUM_THREADS``)."""
    count = resolve_threads(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(count)
    else:  # torch reads it when imported: stages that never import torch do not pay for it now
        os.environ[THREADS_ENV] = str(count)
    return count


def backbone_parser(stage: str, help: str) -> argparse.ArgumentParser:
    """The command line of a per-backbone stage (a DVC ``matrix`` over backbones): ``--backbone NAME``."""
    parser = argparse.ArgumentParser(description=f"psychovis `{stage}` stage")
    parser.add_argument("--backbone", required=True, choices=BACKBONES, help=help)
    return parser


# What a stage's memory depends on, named in the line printed when it runs out of memory.
_MEMORY_KEYS: dict[str, str] = {
    "stimuli": "stimuli.size or the number of frequencies (stimuli.frequency_step_cpd)",
    "features": "features.batch_size or stimuli.size",
    "atlas_features": "atlas.batch_size or atlas.size",
    "atlas": "atlas.frequencies, atlas.orientations or atlas.phases",
    "psychophysics": "psychophysics.batch_size, psychophysics.size or psychophysics.frequencies",
    "human_judgement": "human_judgement.batch_size or human_judgement.size",
    "pretrain": "train.batch_size, train.crop_size or train.channels",
    "train": "train.batch_size, train.crop_size or train.channels",
    "evaluate": "evaluate.max_size",
}
_TRACKING_MODULES = ("mlflow", "sqlalchemy", "sqlite3", "alembic")
MAX_PIXELS_ENV = "PSYCHOVIS_MAX_PIXELS"
"""How the runner hands ``images.max_pixels`` to :mod:`psychovis.images` (read there as the default cap)."""


_TORCH_BOILERPLATE = re.compile(
    r"Weights only load failed\.(?: This file can still be loaded[^.]*\.)?"
    r"|In PyTorch \d+\.\d+, we changed the default value of the `weights_only` argument.*?`True`\."
    r"|Re-running `torch\.load` with `weights_only` set to `False`.*?trusted source\."
    r"|\(\d\) Alternatively,[^.]*\."
    r"|Please file an issue with the following so that we can make `weights_only=True` compatible with your use case:"
    r"|WeightsUnpickler error:"
    r"|Check the documentation of torch\.load to learn more.*?torch\.load\.html\.?",
    re.DOTALL,
)


def _drop_unsafe_torch_advice(text: str) -> str:
    """Keep only what torch's safe loader refused from its "Weights only load failed ..." message.

    That message advises retrying with ``weights_only=False``, which runs the file's code: a stage
    must never suggest loading an untrusted file that way.
    """
    if "Weights only load failed" not in text:
        return text
    start = text.find("Weights only load failed")
    marker = text.find("torch.load.html", start)
    end = len(text) if marker < 0 else marker + len("torch.load.html.")
    detail = " ".join(_TORCH_BOILERPLATE.sub(" ", text[start:end]).split()).strip(" .")
    return text[:start] + "refused by the safe loader" + (f": {detail}" if detail else "") + text[end:]


def _one_line(text: object) -> str:
    """:func:`psychovis.errors.one_line` (a message may quote a multi-line error), less torch's unsafe advice.

    torch's advice to retry ``torch.load`` with ``weights_only=False`` (which runs the file's code) is
    cut from any message: a stage must never suggest loading an untrusted file unsafely.
    """
    return one_line(_drop_unsafe_torch_advice(str(text)))


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    text = str(exc)
    # torch's allocators raise RuntimeError (CPU) or torch.OutOfMemoryError (CUDA, a RuntimeError)
    return isinstance(exc, RuntimeError) and (
        "can't allocate memory" in text or "out of memory" in text.lower() or type(exc).__name__ == "OutOfMemoryError"
    )


_DRIVER_ERROR = re.compile(r"\(([\w.]*Error)\) ([^\[]+)")
"""SQLAlchemy's ``(sqlite3.OperationalError) attempt to write a readonly database [SQL: ...]``: the driver's words."""


def _store_problem(kind: str, detail: str) -> str:
    """The driver's error in a store failure (SQLAlchemy wraps it in autoflush notes and the SQL), else ``detail``."""
    found = _DRIVER_ERROR.search(detail)
    if found is None:
        return f"{kind}: {detail[:250]}"
    return f"{found.group(1)}: {found.group(2).split(' (Background on this error at:')[0].strip()}"


def _tracking_advice(detail: str) -> str:
    """What to do about a store error: a healthy store that is busy or read-only must not be moved aside."""
    text = detail.lower()
    if "readonly" in text or "read-only" in text or "permission denied" in text:
        return "the store is read-only: make mlflow.db and its folder writable, or point MLFLOW_TRACKING_URI elsewhere"
    if "locked" in text or "unique constraint" in text or "busy" in text:
        return "another process is writing the store: run the stage again when it has finished"
    if "disk" in text and ("full" in text or "quota" in text):
        return "the disk holding the store is full: free space and run again"
    if "disk i/o error" in text:  # a write refused under an open store: made read-only, or out of quota
        return (
            "the store could not be written: check that mlflow.db and its folder are writable and that the disk "
            "(or your quota) has space, then run again"
        )
    return "check MLFLOW_TRACKING_URI; if mlflow.db itself is damaged, move it aside so a new one is created"


def describe_failure(exc: BaseException, stage: str, sections: Sequence[str]) -> str:
    """The one line a stage prints for ``exc``: what went wrong, where, and what to check.

    Args:
        exc: the exception that ended the stage.
        stage: the stage's name.
        sections: the params sections the stage reads (named in the advice).

    Returns:
        One line without the ``psychovis <stage>: error:`` prefix.
    """
    if isinstance(exc, PsychovisError):
        return _one_line(str(exc))
    detail = _one_line(str(exc)) or "(no message)"
    kind = type(exc).__name__
    if _is_out_of_memory(exc):
        keys = _MEMORY_KEYS.get(stage, "the sizes and batch sizes in params.yaml")
        return _one_line(
            f"out of memory ({kind}: {detail[:200]}); reduce {keys} in params.yaml, or free memory and run again"
        )
    if isinstance(exc, UnicodeDecodeError):
        return _one_line(
            f"a text file is not UTF-8 ({exc.reason} at byte {exc.start}: {exc.object[exc.start : exc.end]!r}); "
            f"save the input files of stage {stage} as UTF-8"
        )
    if isinstance(exc, OSError) and exc.errno is not None:
        where = f" ({exc.filename})" if exc.filename else ""
        if exc.errno == errno.ENOSPC:
            return _one_line(f"the disk is full{where}; free space and run again (the previous outputs were kept)")
        return _one_line(f"{exc.strerror or detail}{where}; check the file exists, is readable and its folder writable")
    module = type(exc).__module__.split(".", 1)[0]
    if module in _TRACKING_MODULES:
        return _one_line(
            f"the MLflow tracking store failed ({_store_problem(kind, detail)}); {_tracking_advice(detail)}"
        )
    if module == "pyarrow":
        return _one_line(
            f"a Parquet file could not be read or written ({kind}: {detail[:250]}); rerun the stages "
            "that write its inputs (`dvc repro`)"
        )
    named = ", ".join(f"params.yaml: {section}" for section in sections) or "params.yaml"
    return _one_line(
        f"unexpected {kind}: {detail[:300]}; check {named} and the upstream outputs under data/ "
        f"(rerun with --debug or {DEBUG_ENV}=1 for the traceback)"
    )


def params_epilog(sections: Sequence[str]) -> str:
    """The ``--help`` text that lists the ``params.yaml`` keys a stage reads, section by section."""
    lines = ["reads params.yaml:"]
    for section in dict.fromkeys([*sections, "images"]):
        keys = ", ".join(params_module.SCHEMA.get(section, {}))
        lines.append(f"  {section}: {keys}" if keys else f"  {section}")
    lines.append("change one with `dvc exp run -S section.key=value`; `python -m psychovis list` shows allowed names")
    return "\n".join(lines)


def run_stage(
    stage: str,
    main: Callable[[StageContext], None],
    sections: Sequence[str] | None = None,
    parser: argparse.ArgumentParser | None = None,
    argv: Sequence[str] | None = None,
) -> None:
    """Validate params, then run ``main`` as one transaction; any failure is one line and exit 2.

    Every output written through :func:`psychovis.io.atomic_path` during ``main`` is restored to
    its previous bytes (or removed when new) if the stage fails, so a failed stage never leaves
    some outputs new and others old. Any exception becomes one line on stderr (the problem, and
    what to check) and exit code 2; Ctrl-C is one line and exit 130. Pass ``--debug`` (or set
    ``PSYCHOVIS_DEBUG=1``) to see the full traceback instead.

    ``sections``: the params sections the stage reads (default: the stage's
    :data:`~psychovis.pipeline.params.STAGE_SECTIONS`, which :mod:`~psychovis.pipeline.stage_start`
    already checked before the stage's heavy imports).
    """
    sections = params_module.STAGE_SECTIONS[stage] if sections is None else sections
    parser = parser or argparse.ArgumentParser(description=f"psychovis `{stage}` stage")
    parser.epilog = params_epilog(sections)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = parser.parse_args(argv)
    debug = debug_requested(args.debug)
    # from now on SIGINT, SIGTERM and SIGHUP roll the stage back (StageInterrupted, a KeyboardInterrupt)
    with signals.handled():
        try:
            # the checks stage_start made before the heavy imports, again (milliseconds; in-process runs skip those)
            loaded = startup_checks(args.params, sections, Path.cwd())
            # images.max_pixels is a safety limit, not a result: handed to the image reader, not traced or logged
            limits = loaded["images"] if "images" in sections else loaded.pop("images")
            os.environ[MAX_PIXELS_ENV] = str(limits["max_pixels"])
            # base.threads is a resource, not a result: applied here, so no stage depends on it (a stage
            # that reads no `base` section is a light one: one thread)
            apply_threads(loaded["base"]["threads"] if "base" in loaded else 1)
            validated = params_trace.traced(stage, loaded)
            # Warnings are held back while the stage runs: shown if it succeeds, dropped if it fails (the
            # one line says what went wrong; --debug shows everything as it happens).
            with warnings.catch_warnings(record=not debug) as held, io.stage_transaction() as transaction:
                main(StageContext(stage, validated, args, Path.cwd()))
                params_trace.note_written(transaction.written, Path.cwd())
            for warning in held or ():
                warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
        except KeyboardInterrupt as exc:
            if debug:
                raise
            signalled = isinstance(exc, signals.StageInterrupted) and exc.name != "SIGINT"
            how = f" ({exc.name})" if signalled else ""
            print(
                f"psychovis {stage}: interrupted{how}; the outputs written so far were put back to their previous "
                "versions",
                file=sys.stderr,
            )
            sys.exit(exc.exit_code if isinstance(exc, signals.StageInterrupted) else 130)
        except Exception as exc:  # the last resort: no traceback reaches the user without --debug
            if debug:
                raise
            print(f"psychovis {stage}: error: {describe_failure(exc, stage, sections)}", file=sys.stderr)
            sys.exit(2)
