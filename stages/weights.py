"""Stage `weights`: per-map loss weights, exported one ``<scheme>.safetensors`` per scheme.

``vfss``: the paper's L1-normalised VFSS; ``topk``: its top-k maps; ``vfss_normalised``: VFSS over
each map's mean response (the tuning's shape, not its gain); ``lpips_weighted``: the LPIPS linear
head of each map (learned from human judgements), at ``weights.lpips_layers``.
"""

from psychovis.pipeline import stage_start  # noqa: F401  (first: signals handled during the imports below)

# isort: split

import numpy as np
import pandas as pd
import torch

from psychovis import io
from psychovis.backbones import backbone_spec, lpips_heads, resolve_layers
from psychovis.errors import ParamsError
from psychovis.feature_weights import FeatureWeights, shaping_params
from psychovis.pipeline.inputs import VFSS_TABLE, read_input
from psychovis.pipeline.runner import StageContext, run_stage
from psychovis.vfss import l1_weights, top_k_mask

OUT = "data/weights"


def main(ctx: StageContext) -> None:
    base, p = ctx.params["base"], ctx.params["weights"]
    layers = resolve_layers(backbone_spec(base["backbone"]), p["layers"], key="weights.layers")
    scores = read_input(VFSS_TABLE, columns=["layer", "channel", "vfss", "vfss_normalised"])
    spec = backbone_spec(base["backbone"])
    lpips_layers = resolve_layers(spec, p["lpips_layers"], key="weights.lpips_layers")
    heads = lpips_heads(base["backbone"])
    no_head = [layer for layer in lpips_layers if layer not in heads]
    if no_head:
        raise ParamsError(f"weights.lpips_layers {no_head} have no LPIPS head; choose from {sorted(heads)}")
    missing = sorted(set(layers) - set(scores["layer"]))
    if missing:
        raise ParamsError(f"weights.layers {missing} were not probed; add them to features.layers")
    small = [layer for layer in layers if (scores["layer"] == layer).sum() < p["top_k"]]
    if small:
        size = int((scores["layer"] == small[0]).sum())
        raise ParamsError(f"weights.top_k is {p['top_k']} but {small[0]} has {size} maps; choose at most {size}")
    with ctx.run() as run:
        rows, exported = [], {"vfss": {}, "topk": {}, "vfss_normalised": {}, "lpips_weighted": {}}
        for layer in layers:
            chosen = scores[scores["layer"] == layer].sort_values("channel")
            vfss = chosen["vfss"].to_numpy()
            exported["vfss"][layer] = l1_weights(vfss)
            exported["topk"][layer] = top_k_mask(vfss, p["top_k"])
            exported["vfss_normalised"][layer] = l1_weights(chosen["vfss_normalised"].to_numpy())
            rank = np.empty(len(vfss), dtype=np.int32)
            rank[np.argsort(-vfss, kind="stable")] = np.arange(1, len(vfss) + 1)
            rows.append(
                chosen.assign(
                    weight_vfss=exported["vfss"][layer],
                    weight_topk=exported["topk"][layer],
                    weight_vfss_normalised=exported["vfss_normalised"][layer],
                    rank=rank,
                )
            )
        for layer in lpips_layers:
            exported["lpips_weighted"][layer] = l1_weights(heads[layer].double().numpy())
        table = pd.concat(rows, ignore_index=True)
        io.write_parquet(table, f"{OUT}/weights.parquet")
        for scheme, per_layer in exported.items():
            # Only the keys that shaped this scheme: `-S weights.top_k=32` leaves vfss.safetensors byte-identical.
            artifact = FeatureWeights(
                base["backbone"],
                scheme,
                {layer: torch.from_numpy(w).float() for layer, w in per_layer.items()},
                shaping_params(scheme, ctx.params),
            ).save(f"{OUT}/{scheme}.safetensors")
            run.log_artifact(artifact, "weights")
        metrics = {}
        for layer in layers:
            w = exported["vfss"][layer]
            # Effective number of maps: 1/sum(w^2) for L1-normalised w (= C when uniform).
            metrics[layer] = {
                "maps": int(w.size),
                "effective_maps": io.json_number(1.0 / np.sum(w**2), 3),
                "max_weight": io.json_number(w.max(), 6),
            }
        # Headline: the first layer's numbers flat (the default derives weights at one layer), the rest by layer.
        first, *others = layers
        headline = {key: value for key, value in metrics[first].items() if key != "maps"}
        headline.update({layer: {"effective_maps": metrics[layer]["effective_maps"]} for layer in others})
        io.write_headline(headline, "metrics/weights.json", digits=6)
        for layer, values in metrics.items():
            run.log_metrics({f"{layer}.{key}": value for key, value in values.items()})


if __name__ == "__main__":
    run_stage("weights", main)
