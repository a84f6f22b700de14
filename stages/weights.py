"""Stage `weights`: per-map weights from VFSS (L1-normalised, and top-k selected), exported."""

import numpy as np
import pandas as pd
import torch

from psychovis import io
from psychovis.backbones import backbone_spec, resolve_layers
from psychovis.errors import ParamsError
from psychovis.feature_weights import FeatureWeights
from psychovis.pipeline.params import params_hash
from psychovis.pipeline.runner import StageContext, run_stage
from psychovis.vfss import l1_weights, top_k_mask

OUT = "data/weights"


def main(ctx: StageContext) -> None:
    base, p = ctx.params["base"], ctx.params["weights"]
    layers = resolve_layers(backbone_spec(base["backbone"]), p["layers"], key="weights.layers")
    scores = io.read_parquet("data/vfss/vfss.parquet", columns=["layer", "channel", "vfss"])
    missing = sorted(set(layers) - set(scores["layer"]))
    if missing:
        raise ParamsError(f"weights.layers {missing} were not probed; add them to features.layers")
    with ctx.run() as run:
        rows, exported = [], {"vfss": {}, "topk": {}}
        for layer in layers:
            chosen = scores[scores["layer"] == layer].sort_values("channel")
            vfss = chosen["vfss"].to_numpy()
            exported["vfss"][layer] = l1_weights(vfss)
            exported["topk"][layer] = top_k_mask(vfss, min(p["top_k"], len(vfss)))
            rank = np.empty(len(vfss), dtype=np.int32)
            rank[np.argsort(-vfss, kind="stable")] = np.arange(1, len(vfss) + 1)
            rows.append(
                chosen.assign(weight_vfss=exported["vfss"][layer], weight_topk=exported["topk"][layer], rank=rank)
            )
        table = pd.concat(rows, ignore_index=True)
        io.write_parquet(table, f"{OUT}/weights.parquet")
        metadata = {
            "params_hash": params_hash(ctx.logged_params),
            "csf": ctx.params["vfss"]["csf"],
        }
        for scheme, per_layer in exported.items():
            artifact = FeatureWeights(
                base["backbone"],
                scheme,
                {layer: torch.from_numpy(w).float() for layer, w in per_layer.items()},
                metadata,
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
        io.write_json(metrics, "metrics/weights.json")
        for layer, values in metrics.items():
            run.log_metrics({f"{layer}.{key}": value for key, value in values.items()})


if __name__ == "__main__":
    run_stage("weights", main, sections=["base", "weights", "vfss"])
