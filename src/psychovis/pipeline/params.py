"""The ``params.yaml`` schema, validated before any work is done.

Every key a stage reads is declared here with its type and allowed values, so a typo or a bad
value stops the stage with one line naming the key, e.g.::

    params.yaml: vfss.csf must be one of ['mannos_sakrison', 'mannos_sakrison_code'], got 'barton'
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from psychovis.errors import ParamsError
from psychovis.names import (
    BACKBONES,
    BACKGROUNDS,
    BAPPS_SPLITS,
    BAPPS_SUBSETS,
    CSF_MODELS,
    DEVICES,
    DISTANCES,
    FREQUENCY_MAPPINGS,
    GRATING_KINDS,
    INPUT_SCALINGS,
    JUDGES,
    MODELFEST_DISTANCES,
    MODELFEST_FAMILIES,
    ORIENTATION_POOLINGS,
    UPSAMPLERS,
    VFSS_NORMALISATIONS,
    WEIGHTED_LOSSES,
    WINDOWS,
)
from psychovis.validation import Choice, LayerList, ListOf, Nullable, Number, Pair, Text, Threads, Validator

SCHEMA: dict[str, dict[str, Validator]] = {
    "images": {  # safety limits of every stage that decodes images; not part of any result
        "max_pixels": Number(1_024, 1_000_000_000, integer=True),
    },
    "base": {
        "seed": Number(0, 2**31 - 1, integer=True),
        "device": Choice(DEVICES),
        "backbone": Choice(BACKBONES),
        "threads": Threads(),  # a resource, not a result: read by the runner, no stage depends on it
    },
    "stimuli": {
        "kind": Choice(GRATING_KINDS),
        "size": Number(16, 1024, integer=True),
        "frequency_start_cpd": Number(1e-3, 1000),
        "frequency_stop_cpd": Number(1e-3, 1000),
        "frequency_step_cpd": Number(1e-3, 1000),
        "frequency_mapping": Choice(FREQUENCY_MAPPINGS),
        "viewing_distance_in": Number(1.0, 10_000.0),
        "pixels_per_inch": Number(1.0, 10_000.0),
        "orientations_deg": ListOf(Number(-360.0, 360.0)),
        "phases_rad": ListOf(Number(-2 * math.pi, 2 * math.pi)),
        "contrasts": ListOf(Number(0.0, 1.0)),
        "input_scaling": Choice(INPUT_SCALINGS),
    },
    "features": {
        "layers": LayerList(),
        "batch_size": Number(1, 4096, integer=True),
    },
    "tuning": {
        "min_response": Number(0.0, None),
        "example_maps": Number(1, 64, integer=True),
    },
    "vfss": {
        "csf": Choice(CSF_MODELS),
        "normalise": Choice(VFSS_NORMALISATIONS),
        "sensitivity_top_k": Number(1, 4096, integer=True),
    },
    "weights": {
        "layers": ListOf(Text()),
        "top_k": Number(1, 4096, integer=True),
        "lpips_layers": ListOf(Text()),
    },
    "pretrain": {  # the L1 warm start every loss fine-tunes from (stage pretrain)
        "iterations": Number(1, 10_000_000, integer=True),
        "learning_rate": Number(1e-7, 1.0),
    },
    "train": {
        "baseline_losses": ListOf(Choice(("pixel", "vgg"))),
        "weighted_losses": ListOf(Choice(WEIGHTED_LOSSES)),
        "seeds": ListOf(Number(0, 2**31 - 1, integer=True)),
        "layers": ListOf(Text()),
        "pixel_weight": Number(0.0, 1e6),
        "perceptual_weight": Number(0.0, 1e6),
        "scale": Number(2, 8, integer=True),
        "iterations": Number(1, 10_000_000, integer=True),
        "batch_size": Number(1, 4096, integer=True),
        "crop_size": Number(16, 1024, integer=True),
        "learning_rate": Number(1e-7, 1.0),
        "channels": Number(4, 1024, integer=True),
        "residual_blocks": Number(1, 256, integer=True),
        "upsampler": Choice(UPSAMPLERS),
        "image_dir": Nullable(Text()),
        "test_images": Number(1, 1000, integer=True),
        "log_every": Number(1, 1_000_000, integer=True),
        "processes": Number(1, 1024, integer=True),  # torchrun ranks of the training stages
        "channels_last": Choice((False, True)),
        "autocast": Choice((False, True)),
    },
    "evaluate": {
        "judges": ListOf(Choice(JUDGES)),
        "max_size": Nullable(Number(32, 16384, integer=True)),
        "border": Number(0, 64, integer=True),
        "frequency_bands": Number(2, 64, integer=True),
        "figure_crop": Number(16, 1024, integer=True),
        "figure_seed": Number(0, 2**31 - 1, integer=True),
    },
    "psychophysics": {  # offline grating-detection test of image distances (dvc.yaml stage psychophysics)
        "distances": ListOf(Choice(DISTANCES)),
        "layers": ListOf(Text()),
        "top_k": Number(1, 4096, integer=True),
        "size": Number(16, 1024, integer=True),
        "frequency_min_cpd": Number(1e-3, 1000.0),
        "frequency_max_cpd": Number(1e-3, 1000.0),
        "frequencies": Number(2, 256, integer=True),
        "contrast_min": Number(1e-6, 1.0),
        "contrast_max": Number(1e-6, 1.0),
        "contrasts": Number(2, 256, integer=True),
        "phases": Number(1, 16, integer=True),
        "window": Choice(WINDOWS),
        "window_taper": Number(0.0, 1.0),
        "reference_frequency_cpd": Number(1e-3, 1000.0),
        "reference_contrast": Number(1e-6, 1.0),
        "criterion_contrasts": ListOf(Number(1e-6, 1.0)),
        "min_cycles": Number(0.0, 1000.0),
        "nyquist_safe_cpp": Number(1e-3, 0.5),
        "reference_csfs": ListOf(Choice(CSF_MODELS)),
        "backgrounds": ListOf(Choice(BACKGROUNDS)),
        "natural_image": Text(),
        "background_amplitude": Number(0.0, 0.5),
        "texture_band_cpd": Pair(Number(1e-3, 1000.0)),
        "subset_ks": ListOf(Number(1, 4096, integer=True)),
        "null_draws": Number(1, 100_000, integer=True),
        "subset_background": Choice(BACKGROUNDS),
        "batch_size": Number(1, 4096, integer=True),
    },
    "human_judgement": {  # distances vs human judgements (dvc.yaml stage human_judgement); all paths null = skipped
        "tid2013": Nullable(Text()),
        "kadid10k": Nullable(Text()),
        "bapps": Nullable(Text()),
        "bapps_split": Choice(BAPPS_SPLITS),
        "bapps_subsets": Nullable(ListOf(Choice(BAPPS_SUBSETS))),
        "distances": ListOf(Choice(DISTANCES)),
        "layers": ListOf(Text()),
        "top_k": Number(1, 4096, integer=True),
        "size": Nullable(Number(16, 4096, integer=True)),
        "batch_size": Number(1, 4096, integer=True),
        "bootstrap": Number(0, 100_000, integer=True),
        "subset_ks": ListOf(Number(1, 4096, integer=True)),
        "subset_seeds": Number(1, 1000, integer=True),
        "max_pairs": Nullable(Number(1, 10_000_000, integer=True)),
    },
    "atlas": {  # the tuning atlas beyond the paper (dvc.yaml stages atlas_features@*, atlas@*)
        "backbones": ListOf(Choice(BACKBONES)),
        "size": Number(16, 1024, integer=True),
        "frequency_min_cpp": Number(1e-4, 0.5),
        "frequency_max_cpp": Number(1e-4, 0.5),
        "frequencies": Number(3, 256, integer=True),
        "orientations": Number(1, 64, integer=True),
        "phases": Number(1, 64, integer=True),
        "contrast": Number(0.0, 1.0),
        "window_sigma_px": Nullable(Number(0.5, 10_000.0)),
        "layers": LayerList(),
        "batch_size": Number(1, 4096, integer=True),
        "frequency_mapping": Choice(FREQUENCY_MAPPINGS),
        "viewing_distance_in": Number(1.0, 10_000.0),
        "pixels_per_inch": Number(1.0, 10_000.0),
        "orientation_pooling": Choice(ORIENTATION_POOLINGS),
        "min_response": Number(0.0, None),
        "min_relative_range": Number(0.0, None),
        "csf": Choice(CSF_MODELS),
        "sensitivity_csfs": ListOf(Choice(CSF_MODELS)),
        "sensitivity_mappings": ListOf(Choice(FREQUENCY_MAPPINGS)),
        "sensitivity_pixels_per_degree": Nullable(ListOf(Number(1.0, 10_000.0))),
        "top_k": Number(1, 4096, integer=True),
        "example_maps": Number(1, 64, integer=True),
    },
    "modelfest": {  # every distance as an observer of the ModelFest detection thresholds (stage modelfest)
        "px_per_degree": Number(1.0, 10_000.0),
        "distances": ListOf(Choice(MODELFEST_DISTANCES), min_length=0),
        "layers": ListOf(Text()),
        "top_k": Number(1, 4096, integer=True),
        "csfs": ListOf(Choice(CSF_MODELS), min_length=0),
        "contrast_min": Number(1e-6, 1.0),
        "contrast_max": Number(1e-6, 1.0),
        "contrasts": Number(2, 64, integer=True),
        "sweep_px_per_degree": ListOf(Number(1.0, 10_000.0), min_length=0),
        "deep_sweep_px_per_degree": ListOf(Number(1.0, 10_000.0), min_length=0),
        "sweep_distances": ListOf(Choice(MODELFEST_DISTANCES), min_length=0),
        "fit_families": ListOf(Choice(MODELFEST_FAMILIES)),
        "weights_ridge": Number(0.0, 1e6),
        "bootstrap": Number(0, 100_000, integer=True),
        "batch_size": Number(1, 4096, integer=True),
    },
    "compare": {  # paired bootstrap differences of the SR methods per judge (stage compare)
        "baselines": ListOf(Text()),
        "resamples": Number(1, 1_000_000, integer=True),
        "level": Number(0.5, 0.999),
        "cluster": Nullable(Choice(("image",))),
        "primary_judge": Choice(JUDGES),
        "equivalence_margin": Number(1e-12, None),
        "drift": Number(0.0, None),
        "drift_halfwidths": Number(0.0, None),
        "drift_draws": Number(0, 100_000, integer=True),
    },
}


def validate(params: Mapping[str, Any], sections: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Check ``params`` against :data:`SCHEMA` and return the validated sections.

    Args:
        params: the parsed ``params.yaml``.
        sections: the sections to check (default: all in the schema).

    Raises:
        ParamsError: with a one-line message naming the first bad key and what is allowed.
    """
    if not isinstance(params, Mapping):
        raise ParamsError("params.yaml must be a mapping of sections")
    unknown_sections = sorted(set(params) - set(SCHEMA))
    if unknown_sections:
        raise ParamsError(f"params.yaml: unknown section(s) {unknown_sections}; allowed: {sorted(SCHEMA)}")
    validated: dict[str, dict[str, Any]] = {}
    for section in sections or list(SCHEMA):
        schema = SCHEMA[section]
        values = params.get(section)
        if not isinstance(values, Mapping):
            raise ParamsError(f"params.yaml: section {section!r} is missing or not a mapping")
        unknown = sorted(set(values) - set(schema))
        if unknown:
            raise ParamsError(
                f"params.yaml: unknown key {section}.{unknown[0]}; allowed keys in {section}: {sorted(schema)}"
            )
        checked: dict[str, Any] = {}
        for key, validator in schema.items():
            name = f"{section}.{key}"
            if key not in values:
                raise ParamsError(f"params.yaml: {name} is missing; add it to the {section} section")
            try:
                checked[key] = validator(name, values[key])
            except ParamsError as exc:
                raise ParamsError(f"params.yaml: {exc}") from None
        validated[section] = checked
    stimuli = validated.get("stimuli")
    if stimuli and stimuli["frequency_stop_cpd"] <= stimuli["frequency_start_cpd"]:
        raise ParamsError("params.yaml: stimuli.frequency_stop_cpd must be greater than stimuli.frequency_start_cpd")
    psychophysics = validated.get("psychophysics")
    if psychophysics:
        for low, high in (("frequency_min_cpd", "frequency_max_cpd"), ("contrast_min", "contrast_max")):
            if psychophysics[high] <= psychophysics[low]:
                raise ParamsError(f"params.yaml: psychophysics.{high} must be greater than psychophysics.{low}")
    modelfest = validated.get("modelfest")
    if modelfest:
        _check_modelfest(modelfest)
    return validated


def _check_modelfest(p: Mapping[str, Any]) -> None:
    """The cross-key rules of the ``modelfest`` section (one-line errors naming the keys)."""
    if p["contrast_max"] <= p["contrast_min"]:
        raise ParamsError("params.yaml: modelfest.contrast_max must be greater than modelfest.contrast_min")
    allowed = [name for name in p["distances"] if name != "gain_normalised"]
    outside = [name for name in p["sweep_distances"] if name not in allowed]
    if outside:
        raise ParamsError(
            f"params.yaml: modelfest.sweep_distances {outside} must be among modelfest.distances "
            f"(gain_normalised excluded); allowed: {allowed}"
        )
    if set(p["fit_families"]) == set(MODELFEST_FAMILIES):
        raise ParamsError(
            "params.yaml: modelfest.fit_families must leave at least one family out (the held-out score); "
            f"allowed: a subset of {list(MODELFEST_FAMILIES)}"
        )


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, plus: a duplicate key is an error, and ``1e-4`` is a number.

    PyYAML follows YAML 1.1, where a float needs a dot (``1.0e-4``), so ``1e-4`` would be read as
    the string ``'1e-4'``; DVC (ruamel, YAML 1.2) reads it as a number, and so do we. A key given
    twice in a mapping silently keeps the last value in PyYAML; DVC refuses it, and so do we, so a
    direct ``python stages/x.py`` run sees the same file DVC does.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                mark = key_node.start_mark
                raise ParamsError(
                    f"duplicate key {key!r} at line {mark.line + 1} (first at line {seen[key] + 1}); keep one of them"
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    """Parse params YAML: safe, duplicate keys refused, ``1e-4`` read as a number (see :class:`_StrictLoader`).

    Raises:
        ParamsError: a duplicate key (with its line).
        yaml.YAMLError: the syntax is invalid.
    """
    return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no arbitrary objects


def load(path: str | Path = "params.yaml", sections: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Read and validate ``params.yaml``.

    Raises:
        ParamsError: the file is missing, is not YAML, has a duplicate key, or a value is invalid.
    """
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path} not found; run the stage from the repository root")
    try:
        raw = parse_yaml(path.read_text(encoding="utf-8"))
    except ParamsError as exc:
        raise ParamsError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {_yaml_problem(exc)}; fix the syntax there") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ParamsError(
            f"{path} is not UTF-8 text (byte {exc.object[exc.start]:#x} on line {line}); save it as UTF-8"
        ) from None
    except OSError as exc:
        raise ParamsError(f"{path} cannot be read ({exc}); pass a readable UTF-8 YAML file") from None
    try:
        return validate(raw or {}, sections)
    except ParamsError as exc:
        message = str(exc)
        if path.name != "params.yaml" and message.startswith("params.yaml"):
            # name the file actually read (``--params other.yaml``), not the default
            message = f"{path}{message.removeprefix('params.yaml')}"
            raise ParamsError(message) from None
        raise


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: what the parser found and where (PyYAML's own message spans several lines)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return " ".join(f"{where}{problem}".split())


def params_hash(params: Mapping[str, Any]) -> str:
    """A short stable hash of (validated) params, for tagging runs and exported artifacts."""
    encoded = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]
