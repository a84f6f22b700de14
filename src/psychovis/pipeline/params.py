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

from psychovis.errors import ParamsError, quote
from psychovis.files import kind, require_regular_file
from psychovis.names import (
    BACKBONES,
    BACKGROUNDS,
    BAPPS_SPLITS,
    BAPPS_SUBSETS,
    CSF_MODELS,
    DEVICES,
    DISTANCES,
    FREQUENCY_MAPPINGS,
    GEOMETRY_LOSS,
    GRATING_KINDS,
    INPUT_SCALINGS,
    JUDGES,
    MAP_DISTANCES,
    MODELFEST_DISTANCES,
    MODELFEST_FAMILIES,
    ORIENTATION_POOLINGS,
    UPSAMPLERS,
    VFSS_NORMALISATIONS,
    WEIGHTED_LOSSES,
    WINDOWS,
)
from psychovis.validation import (
    MAX_PROCESSES,
    Choice,
    LayerList,
    ListOf,
    Nullable,
    Number,
    Pair,
    Text,
    Threads,
    Validator,
    check_processes,
)

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
        "geometry_losses": ListOf(Choice((GEOMETRY_LOSS,)), min_length=0),  # [] = off
        "px_per_degree": Number(1.0, 10_000.0),  # the display's, for the geometry_aware loss
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
        "processes": Number(1, MAX_PROCESSES, integer=True),  # torchrun ranks of the training stages
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
        "px_per_degree": Nullable(Number(1.0, 10_000.0)),
        "sweep_px_per_degree": ListOf(Number(1.0, 10_000.0), min_length=0),
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

STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "stimuli": ("stimuli",),
    "features": ("base", "stimuli", "features"),
    "tuning": ("tuning",),
    "vfss": ("stimuli", "vfss"),
    "weights": ("base", "weights", "vfss"),
    "pretrain": ("base", "train", "pretrain"),
    "train": ("base", "train"),
    "evaluate": ("base", "train", "evaluate"),
    "compare": ("base", "compare"),
    "report": ("base", "train", "pretrain", "evaluate", "compare", "psychophysics", "vfss", "weights"),
    "psychophysics": ("base", "stimuli", "vfss", "psychophysics"),
    "human_judgement": ("base", "human_judgement"),
    "atlas_features": ("base", "atlas"),
    "atlas": ("atlas",),
    "modelfest": ("base", "modelfest"),
}
"""The sections each stage script (``stages/<name>.py``) reads: checked before its heavy imports
(:mod:`psychovis.pipeline.preflight`), then given to it by :func:`psychovis.pipeline.runner.run_stage`."""


def validate(params: Mapping[str, Any], sections: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Check ``params`` against :data:`SCHEMA` and return the validated sections.

    Args:
        params: the parsed ``params.yaml``.
        sections: the sections to check (default: all in the schema).

    Raises:
        ParamsError: with a one-line message naming the first bad key and what is allowed.
    """
    if not isinstance(params, Mapping):
        raise ParamsError(f"params.yaml must be a mapping of sections, got {quote(params)}")
    _check_names(params, "section name", "")
    unknown_sections = sorted(set(params) - set(SCHEMA))
    if unknown_sections:
        raise ParamsError(
            f"params.yaml: unknown section(s) {quote(unknown_sections)}{_look_alike(unknown_sections[0], SCHEMA)}; "
            f"allowed: {sorted(SCHEMA)}"
        )
    validated: dict[str, dict[str, Any]] = {}
    for section in sections or list(SCHEMA):
        schema = SCHEMA[section]
        values = params.get(section)
        if not isinstance(values, Mapping):
            raise ParamsError(f"params.yaml: section {section!r} is missing or not a mapping")
        _check_names(values, "key", f"{section}.")
        unknown = sorted(set(values) - set(schema))
        if unknown:
            raise ParamsError(
                f"params.yaml: unknown key {section}.{quote(unknown[0])[1:-1]}{_look_alike(unknown[0], schema)}; "
                f"allowed keys in {section}: {sorted(schema)}"
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
    _check_combinations(validated)
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
    if not set(p["distances"]) & set(MAP_DISTANCES):
        raise ParamsError(
            f"params.yaml: modelfest.distances must include one of {list(MAP_DISTANCES)}: the human_fitted "
            "weights are fitted to people on their per-map errors"
        )
    if set(p["fit_families"]) == set(MODELFEST_FAMILIES):
        raise ParamsError(
            "params.yaml: modelfest.fit_families must leave at least one family out (the held-out score); "
            f"allowed: a subset of {list(MODELFEST_FAMILIES)}"
        )


def _check_combinations(validated: Mapping[str, Mapping[str, Any]]) -> None:
    """Values that are each in range but make no sense (or a silently wrong result) together."""
    stimuli = validated.get("stimuli")
    if stimuli and 0.0 in stimuli["contrasts"]:
        index = stimuli["contrasts"].index(0.0)
        raise ParamsError(
            f"params.yaml: stimuli.contrasts[{index}] is 0: a grating of zero contrast is a blank grey image "
            "(every map's response is flat); use contrasts in (0, 1]"
        )
    compare = validated.get("compare")
    if compare:
        repeated = sorted({name for name in compare["baselines"] if compare["baselines"].count(name) > 1})
        if repeated:
            raise ParamsError(f"params.yaml: compare.baselines names {quote(repeated)} more than once; list each once")
        needed = math.ceil(2 / (1 - compare["level"]))
        if compare["resamples"] < needed:
            raise ParamsError(
                f"params.yaml: compare.resamples ({compare['resamples']}) is too few for a {compare['level']:g} "
                f"interval (each tail needs a resample); use at least {needed} (2000 is usual)"
            )
    train = validated.get("train")
    if train:
        check_processes(train["batch_size"], train["processes"])


def _check_names(mapping: Mapping[Any, Any], what: str, prefix: str) -> None:
    """Refuse a key that is not text (``1:``, ``true:``, ``null:``): sections and keys are names."""
    for name in mapping:
        if not isinstance(name, str):
            raise ParamsError(
                f"params.yaml: {what} {prefix}{quote(name)} is {type(name).__name__ if name is not None else 'null'}, "
                "not a name; every section and key is text (quote it, or fix the typo)"
            )


def _look_alike(name: str, known: Mapping[str, Any]) -> str:
    """A hint when ``name`` holds characters outside ASCII (a Cyrillic ``ѕ`` for an ``s``, a no-break space)."""
    import unicodedata

    odd = next((char for char in name if not char.isascii() or not char.isprintable()), None)
    if odd is None:
        return ""
    folded = unicodedata.normalize("NFKC", name).strip()
    close = next((key for key in known if key == folded or key.casefold() == folded.casefold()), None)
    if close is None:  # a look-alike letter: match on the ASCII letters at the same places
        close = next(
            (
                key
                for key in known
                if len(key) == len(name)
                and all(a == b for a, b in zip(key, name, strict=True) if a.isascii() and b.isascii())
            ),
            None,
        )
    char = unicodedata.name(odd, f"U+{ord(odd):04X}")
    return (
        f" (it holds the non-ASCII character {char} (U+{ord(odd):04X})"
        + (f"; did you mean {close!r}?" if close else "; type the name in plain ASCII")
        + ")"
    )


class _Yaml11Loader(yaml.SafeLoader):
    """PyYAML's safe loader (YAML 1.1) plus ``1e-4`` as a number: how the stages read params.yaml before.

    Used only to tell a value whose meaning differs between YAML 1.1 and 1.2 (``0100``, ``1:30``,
    ``on``, ``yes``), so that such a value is refused rather than read one way here and another by
    a tool that follows YAML 1.1.
    """


_Yaml11Loader.add_implicit_resolver(
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

MAX_BYTES = 1_000_000
"""The largest params file read (the real one is a few kB); a bigger one, or a device, is refused unread."""
MAX_DEPTH = 32
"""The deepest nesting of mappings and lists accepted (the schema uses three levels)."""
MAX_NODES = 100_000
"""The most values a params file may hold once its aliases are expanded (an alias bomb holds billions)."""
_MERGE_TAG = "tag:yaml.org,2002:merge"


def _yaml12() -> Any:
    """The YAML reader DVC uses for params files (ruamel.yaml, ``typ="safe"``: YAML 1.2, no arbitrary objects)."""
    from ruamel.yaml import YAML

    return YAML(typ="safe")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


class _Checker:
    """Walks the composed YAML once: depth, expanded size, duplicate keys, YAML 1.1/1.2 differences."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader
        self.old = _Yaml11Loader("")
        self.sizes: dict[int, int] = {}

    def scalar(self, node: Any, where: str) -> None:
        from ruamel.yaml.nodes import ScalarNode

        if node.style is not None or str(node.tag) != str(
            self.reader.resolver.resolve(ScalarNode, node.value, (True, False))
        ):
            return  # quoted, or explicitly tagged: read alike by every YAML version
        new = self.reader.constructor.construct_object(node, deep=True)
        tag = self.old.resolve(yaml.ScalarNode, node.value, (True, False))
        try:
            old = self.old.construct_object(yaml.ScalarNode(tag, node.value))
        except yaml.YAMLError:
            return
        if not _same(old, new):
            raise ParamsError(
                f"{where}: {quote(node.value)} reads as {quote(new)} under YAML 1.2 (DVC, dvc.lock, `dvc exp show`) "
                f"but as {quote(old)} under YAML 1.1; write the value you mean unambiguously "
                "(e.g. 100 or 64, '1:30' in quotes for text, true/false for a switch)"
            )

    def size(self, node: Any, where: str, depth: int = 0) -> int:
        """The number of values under ``node`` with aliases expanded (each distinct node checked once)."""
        from ruamel.yaml.nodes import MappingNode, SequenceNode

        if id(node) in self.sizes:
            return self.sizes[id(node)]
        if depth > MAX_DEPTH:
            raise ParamsError(f"{where} nests deeper than {MAX_DEPTH} levels; params sections are flat mappings")
        self.sizes[id(node)] = 1  # a self-referencing alias counts once, not forever
        total = 1
        if isinstance(node, MappingNode):
            seen: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if str(key_node.tag) == _MERGE_TAG:
                    total += self.size(value_node, f"{where} (merge key <<)", depth + 1)
                    continue
                if isinstance(key_node, (MappingNode, SequenceNode)):
                    shape = "mapping" if isinstance(key_node, MappingNode) else "list"
                    raise ParamsError(f"{where}: a key is a {shape}; keys must be names")
                self.scalar(key_node, f"{where} key" if where else "a top-level key")
                key = self.reader.constructor.construct_object(key_node, deep=True)
                line = key_node.start_mark.line
                if key in seen:
                    raise ParamsError(
                        f"duplicate key {quote(key)} at line {line + 1} (first at line {seen[key] + 1}); "
                        "keep one of them"
                    )
                seen[key] = line
                name = key if isinstance(key, str) else quote(key)
                total += 1 + self.size(value_node, f"{where}.{name}" if where else str(name), depth + 1)
        elif isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                total += self.size(item, f"{where}[{index}]", depth + 1)
        else:
            self.scalar(node, where or "the document")
        if total > MAX_NODES:
            raise ParamsError(
                f"{where or 'the document'} expands to more than {MAX_NODES:,} values (YAML aliases repeated "
                "inside each other); write the values out instead of nesting aliases"
            )
        self.sizes[id(node)] = total
        return total


def _check_depth(reader: Any, text: str) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH` before the (recursive, slow when deep) composer runs."""
    from ruamel.yaml import events

    flow = deepest = 0
    quote_char = ""
    comment = False
    for char in text:  # flow brackets first: the parser looks far ahead inside them
        if comment:
            comment = char != "\n"
        elif quote_char:
            quote_char = "" if char == quote_char else quote_char
        elif char in "'\"":
            quote_char = char
        elif char == "#":
            comment = True
        elif char in "[{":
            flow += 1
            deepest = max(deepest, flow)
        elif char in "]}":
            flow -= 1
    depth = 0
    if deepest <= MAX_DEPTH:
        for event in reader.parse(text):
            if isinstance(event, events.MappingStartEvent | events.SequenceStartEvent):
                depth += 1
                deepest = max(deepest, depth)
                if depth > MAX_DEPTH:
                    break
            elif isinstance(event, events.MappingEndEvent | events.SequenceEndEvent):
                depth -= 1
    if deepest > MAX_DEPTH:
        raise ParamsError(f"the document nests deeper than {MAX_DEPTH} levels; params sections are flat mappings")


def parse_yaml(text: str) -> Any:
    """Parse params YAML exactly as DVC does (ruamel.yaml, YAML 1.2, safe), with stricter checks.

    Refused with one line (:class:`ParamsError`): a duplicate key (with both lines); a plain value
    whose meaning differs between YAML 1.1 and 1.2 (both readings shown); nesting deeper than
    :data:`MAX_DEPTH`; aliases that expand to more than :data:`MAX_NODES` values. Merge keys
    (``<<: *base``) are applied as DVC applies them.

    Raises:
        ParamsError: one of the above.
        ruamel.yaml.YAMLError: the syntax is invalid.
    """
    reader = _yaml12()
    _check_depth(reader, text)
    node = reader.compose(text)
    if node is None:
        return None
    _Checker(reader).size(node, "")
    return reader.constructor.construct_document(node)


def _read_text(path: Path) -> str:
    """The text of ``path``: a regular file of at most :data:`MAX_BYTES`, UTF-8 (checked before reading)."""
    if kind(path) is None:
        raise ParamsError(f"{path} not found; run the stage from the repository root")
    require_regular_file(
        path,
        "params file",
        "it cannot be read as YAML: pass a YAML file (e.g. --params params.yaml)",
        max_bytes=MAX_BYTES,
        error=ParamsError,
    )
    data = path.read_bytes()[: MAX_BYTES + 1]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ParamsError(
            f"{path} is not UTF-8 text (byte {data[exc.start]:#x} on line {line}); save it as UTF-8"
        ) from None


def load(path: str | Path = "params.yaml", sections: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Read and validate ``params.yaml``, as DVC reads it (:func:`parse_yaml`).

    Raises:
        ParamsError: the file is missing, not a regular small file, not YAML, has a duplicate key or
            an ambiguous value, or a value is invalid.
    """
    from ruamel.yaml import YAMLError

    path = Path(path)
    try:
        raw = parse_yaml(_read_text(path))
    except ParamsError as exc:
        message = str(exc)
        raise ParamsError(message if message.startswith(str(path)) else f"{path}: {message}") from None
    except YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {_yaml_problem(exc)}; fix the syntax there") from None
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


def _yaml_problem(exc: Exception) -> str:
    """One line: what the parser found and where (the parser's own message spans several lines)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return " ".join(f"{where}{problem}".split())


def params_hash(params: Mapping[str, Any]) -> str:
    """A short stable hash of (validated) params, for tagging runs and exported artifacts."""
    encoded = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]
