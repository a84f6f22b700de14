"""Per-map weights fitted to people: they find the human-like map and are scored held out only."""

import numpy as np

from psychovis.modelfest import fitted


def test_fitted_weights_find_the_human_like_map_and_score_held_out():
    rng = np.random.default_rng(0)
    n_s, n_m = 43, 8
    contrasts = np.geomspace(1e-3, 1.0, 4)
    truth_db = rng.normal(-30, 6, n_s)
    gains = 10 ** rng.normal(3, 0.6, (n_s, n_m))  # the same scale as the human-like map
    gains[:, 3] = 10 ** (-truth_db / 10)  # map 3 alone predicts the people
    errors = gains[:, None, :] * contrasts[None, :, None] ** 2
    people = truth_db[None] + rng.normal(0, 0.5, (4, n_s))
    train = np.arange(20)
    weights, numbers = fitted.premise_test(errors, contrasts, people, train, vfss=np.arange(n_m), ridge=1e-3)
    assert (weights > 0).all() and np.isclose(weights.mean(), 1.0)
    assert int(np.argmax(weights)) == 3
    assert numbers["held_out_rms_db"] < numbers["held_out_rms_db_uniform"]
    assert numbers["held_out_rms_db"] < 2.0
    assert -1 <= numbers["spearman_vfss"] <= 1


def test_fit_uses_only_the_training_stimuli():
    rng = np.random.default_rng(1)
    gain = 10 ** rng.normal(0, 1, (10, 5))
    target = rng.normal(-30, 5, 10)
    a = fitted.fit_weights(gain, target, range(5))
    changed = target.copy()
    changed[5:] += 50.0  # the held-out stimuli cannot move the fit
    np.testing.assert_allclose(fitted.fit_weights(gain, changed, range(5)), a)
