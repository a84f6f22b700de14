"""The generated ModelFest section: the ladder worded by its intervals."""

from psychovis import report


def _summary():
    def row(name, kind, rms, low, high):
        return {"observer": name, "kind": kind, "rms_db": rms, "ci_low": low, "ci_high": high, "rms_mean_db": rms,
                "pearson_r": 0.5, "held_out_rms_db": rms}  # fmt: skip

    return {
        "px_per_degree": 120.0,
        "people": ["a"] * 16,
        "resamples": 100,
        "train_families": ["gabor_csf"],
        "observers": [
            row("constant", "classical", 8.6, 6.5, 10.3),
            row("energy_barten_2003", "classical", 3.9, 3.0, 4.6),
            row("vgg", "deep", 12.2, 10.5, 14.7),
            {"observer": "human", "kind": "human", "rms_db": 2.4, "ci_low": 1.9, "ci_high": 2.9},
        ],
        "human_band_db": {"pooled": 2.4, "min": 1.2, "max": 3.5},
        "noise_floor_of_mean_db": 0.6,
        "published_anchors_db": {"castleCSF": {"rms_db": 2.48, "reference": "Ashraf et al. 2024"}},
        "geometry_aware": [],
        "fitted_weights": [],
        "sweep": [{"observer": "vgg", "px_per_degree": 30.0, "rms_db": 12.9}],
    }


def test_section_words_the_ladder_by_intervals():
    text = "\n".join(report.modelfest_section(_summary()))
    assert "| vgg | deep | 12.20 [10.50, 14.70] |" in text
    assert "above the null; above the human band" in text
    assert "below the null; above the human band" in text  # Barten: 3.0..4.6 vs 6.5..10.3 and 1.9..2.9
    assert "castleCSF" in text and "30 px/deg" in text
    assert "above the best classical one" in text
    finding = report.modelfest_finding(_summary())
    assert "vgg 12.20 [10.50, 14.70]" in finding and "2.40 [1.90, 2.90]" in finding


def _fitted(vfss: float, normalised: float) -> dict:
    row = {"layer": "relu3_2", "ridge": 1.0, "held_out_rms_db": 12.9, "held_out_rms_db_uniform": 13.1,
           "spearman_gain": -0.37, "null_draws": 2000}  # fmt: skip
    for score, observed in (("vfss", vfss), ("vfss_normalised", normalised)):
        row.update({f"spearman_{score}": observed, f"spearman_{score}_gain": 0.39, f"null_{score}_mean": -0.14,
                    f"null_{score}_low": -0.25, f"null_{score}_high": -0.02, f"null_{score}_percentile": 30.0,
                    f"null_{score}_p": 0.7})  # fmt: skip
    return row


def test_fitted_weights_are_worded_by_the_gain_matched_null():
    summary = {**_summary(), "fitted_weights": [_fitted(-0.18, 0.30)]}
    text = "\n".join(report.modelfest_section(summary))
    assert "VFSS's -0.18 (null mean -0.14, 95 % [-0.25, -0.02]" in text
    assert "is no more than gain-matched random scores" in text
    assert "the gain-normalised VFSS's 0.30" in text and "is more than gain-matched random scores" in text
    finding = report.modelfest_finding(summary)
    assert "VFSS -0.18 (inside the gain-matched null's 95 % [-0.25, -0.02])" in finding
    assert "the gain-normalised VFSS 0.30 (above" in finding
    assert report.null_verdict(_fitted(-0.5, 0.0), "vfss") == "below"
    assert report.null_verdict({"spearman_vfss": None}, "vfss") is None
    assert "gain-matched" not in report.modelfest_finding(_summary())  # no fitted weights: no sentence


def test_the_geometry_readings_stand_beside_the_null_s_held_out_error():
    rows = [
        {"observer": "geometry_aware_vgg", "reference_px_per_degree": 30.0, "held_out_rms_db": 15.14,
         "held_out_rms_db_at_120": 13.08},
        {"observer": "pyramid_vgg", "reference_px_per_degree": None, "scales_px_per_degree": [30.0, 60.0, 120.0],
         "held_out_rms_db": 10.8},
    ]  # fmt: skip
    text = "\n".join(report.modelfest_section({**_summary(), "geometry_aware": rows}))
    assert "- geometry_aware_vgg: reference 30.0 px/deg chosen on gabor_csf; held-out RMS 15.14 dB" in text
    assert "(at 120 px/deg: 13.08 dB; the constant null: 8.60 dB)" in text
    assert "- pyramid_vgg: the largest of the distances read at 30, 60, 120 px/deg (no geometry fitted); " in text
    assert "held-out RMS 10.80 dB; the constant null: 8.60 dB." in text
    finding = report.modelfest_finding({**_summary(), "geometry_aware": rows})
    assert "Held out (criteria fitted on gabor_csf, RMS dB on the other stimuli): constant 8.60, vgg 12.20, " in finding
    assert "geometry_aware_vgg 15.14, pyramid_vgg 10.80." in finding
