"""Tests of psychovis.io: atomic writes and schema-checked Parquet reads."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from psychovis import io
from psychovis.errors import DataError


def _leftovers(folder):
    return sorted(path.name for path in folder.iterdir() if path.name.endswith(".tmp"))


@pytest.fixture
def frame():
    return pd.DataFrame(
        {
            "layer": ["relu1_1", "relu1_1", "relu3_2"],
            "channel": np.array([0, 1, 255], dtype=np.int32),
            "stimulus_id": np.array([0, 1, 59], dtype=np.int64),
            "response": np.array([0.5, 1.25, np.nan], dtype=np.float32),
        }
    )


def test_atomic_path_writes_and_creates_folders(tmp_path):
    target = tmp_path / "a" / "b" / "out.txt"
    with io.atomic_path(target) as tmp:
        assert tmp != target
        assert tmp.parent == target.parent
        assert not target.exists()  # nothing appears before the block succeeds
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert _leftovers(target.parent) == []


def test_atomic_path_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    path = io.write_json({"a": 1}, tmp_path / "metrics.json")
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("error", [ValueError("boom"), KeyboardInterrupt()])
def test_atomic_path_keeps_the_previous_file_when_the_writer_raises(tmp_path, error):
    target = tmp_path / "out.txt"
    target.write_text("previous")
    with pytest.raises(type(error)), io.atomic_path(target) as tmp:
        tmp.write_text("half-writ")
        raise error
    assert target.read_text() == "previous"
    assert _leftovers(tmp_path) == []
    assert [path.name for path in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_path_turns_os_errors_into_data_errors(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("previous")
    with pytest.raises(DataError, match=r"out\.txt"), io.atomic_path(target):
        raise OSError(28, "No space left on device")
    assert target.read_text() == "previous"
    assert _leftovers(tmp_path) == []


def test_atomic_path_leaves_no_file_when_there_was_none(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("x")
        raise RuntimeError
    assert list(tmp_path.iterdir()) == []


def test_write_parquet_is_byte_identical(tmp_path, frame):
    first = io.write_parquet(frame, tmp_path / "one.parquet")
    second = io.write_parquet(frame.copy(), tmp_path / "two.parquet")
    again = first.read_bytes()
    io.write_parquet(frame, first)
    assert first.read_bytes() == again
    assert second.read_bytes() == again


def test_parquet_round_trip_without_index(tmp_path, frame):
    indexed = frame.set_axis([10, 20, 30])
    path = io.write_parquet(indexed, tmp_path / "t.parquet")
    loaded = io.read_parquet(path, columns=["layer", "response"])
    pd.testing.assert_frame_equal(loaded, frame)
    assert list(loaded.index) == [0, 1, 2]


def test_read_parquet_missing_column(tmp_path, frame):
    path = io.write_parquet(frame, tmp_path / "features.parquet")
    with pytest.raises(DataError) as info:
        io.read_parquet(path, columns=["layer", "frequency_cpd"])
    message = str(info.value)
    assert str(path) in message
    assert "frequency_cpd" in message
    assert "dvc repro" in message


def test_read_parquet_corrupt_file(tmp_path, frame):
    path = io.write_parquet(frame, tmp_path / "features.parquet")
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(DataError, match=r"features\.parquet"):
        io.read_parquet(path)
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match=r"garbage\.parquet"):
        io.read_parquet(garbage)


def test_read_parquet_missing_file(tmp_path):
    path = tmp_path / "stimuli" / "stimuli.parquet"
    with pytest.raises(DataError) as info:
        io.read_parquet(path)
    assert str(path) in str(info.value)
    assert "dvc repro" in str(info.value)


def test_write_to_read_only_folder(tmp_path, frame):
    folder = tmp_path / "locked"
    folder.mkdir()
    (folder / "old.parquet").write_bytes(b"old")
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as a user that can write to a read-only folder (root)")
        with pytest.raises(DataError) as info:
            io.write_parquet(frame, folder / "old.parquet")
        assert "old.parquet" in str(info.value)
        assert "\n" not in str(info.value)
        assert (folder / "old.parquet").read_bytes() == b"old"
    finally:
        folder.chmod(0o700)


def test_write_under_a_file_raises_data_error(tmp_path, frame):
    # Works as root too: a folder cannot be created where a file is.
    blocker = tmp_path / "data"
    blocker.write_text("a file, not a folder")
    with pytest.raises(DataError, match=r"stimuli\.parquet"):
        io.write_parquet(frame, blocker / "stimuli" / "stimuli.parquet")


def test_write_json(tmp_path):
    path = io.write_json({"b": 1, "a": [1.5, 2]}, tmp_path / "m.json")
    text = path.read_text()
    assert text.endswith("\n")
    assert json.loads(text) == {"a": [1.5, 2], "b": 1}
    assert text.index('"a"') < text.index('"b"')


def test_write_json_rejects_nan_and_keeps_the_previous_file(tmp_path):
    path = io.write_json({"a": 1}, tmp_path / "m.json")
    with pytest.raises(ValueError):
        io.write_json({"a": float("nan")}, path)
    assert json.loads(path.read_text()) == {"a": 1}
    assert _leftovers(tmp_path) == []


def test_write_csv(tmp_path):
    path = io.write_csv(pd.DataFrame({"f": [0.1, 1 / 3]}, index=[5, 6]), tmp_path / "c.csv")
    assert path.read_text().splitlines() == ["f", "0.1", "0.333333"]


def test_save_figure(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots()
    axes.plot([0, 1], [1, 0])
    path = io.save_figure(figure, tmp_path / "fig.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(figure.number)


# ------------------------------------------------------------------------------------ stage transactions


def test_stage_transaction_puts_every_output_back_when_the_stage_fails(tmp_path):
    old = io.write_json({"version": 1}, tmp_path / "metrics" / "a.json")
    before = old.read_bytes()
    with pytest.raises(RuntimeError, match="later step"), io.stage_transaction() as transaction:
        io.write_json({"version": 2}, old)
        io.write_json({"version": 2}, old)  # written twice: the first previous version is the one kept
        io.write_csv(pd.DataFrame({"x": [1]}), tmp_path / "new" / "b.csv")
        assert json.loads(old.read_text()) == {"version": 2}  # read-after-write inside the stage
        assert len(transaction.written) == 2
        raise RuntimeError("later step")
    assert old.read_bytes() == before
    assert not (tmp_path / "new" / "b.csv").exists()
    assert _leftovers(tmp_path) == []
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["a.json"]


def test_stage_transaction_keeps_outputs_and_removes_kept_versions_on_success(tmp_path):
    path = io.write_json({"version": 1}, tmp_path / "a.json")
    with io.stage_transaction():
        io.write_json({"version": 2}, path)
    assert json.loads(path.read_text()) == {"version": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_stage_transaction_rolls_back_on_keyboard_interrupt_and_spares_hidden_state(tmp_path):
    path = io.write_json({"version": 1}, tmp_path / "a.json")
    with pytest.raises(KeyboardInterrupt), io.stage_transaction():
        io.write_json({"version": 2}, path)
        io.write_json({"step": 10}, tmp_path / ".run.partial.json")  # resumable state: not rolled back
        raise KeyboardInterrupt
    assert json.loads(path.read_text()) == {"version": 1}
    assert json.loads((tmp_path / ".run.partial.json").read_text()) == {"step": 10}


def test_nested_stage_transactions_are_one(tmp_path):
    path = io.write_json({"version": 1}, tmp_path / "a.json")
    with pytest.raises(ValueError), io.stage_transaction() as outer:
        with io.stage_transaction() as inner:
            assert inner is outer
            io.write_json({"version": 2}, path)
        raise ValueError("after the inner block")
    assert json.loads(path.read_text()) == {"version": 1}


# ------------------------------------------------------------------------------------ finite input checks


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([1.0, float("nan")], r"t\.parquet: column 'x' holds 1 non-finite value\(s\) \(row 1: nan\)"),
        ([float("inf"), 1.0], r"column 'x' holds 1 non-finite value\(s\) \(row 0: inf\)"),
        (["1.0", "two"], r"column 'x' holds text values \(e\.g\. '1\.0'\), not numbers"),
        ([True, False], r"column 'x' holds true/false values"),
        ([1.0, -2.0], r"column 'x' holds negative value\(s\) \(row 1: -2\.0\)"),
    ],
)
def test_read_parquet_refuses_non_finite_text_and_negative_values(tmp_path, values, message):
    path = io.write_parquet(pd.DataFrame({"x": values, "y": [1, 2]}), tmp_path / "t.parquet")
    with pytest.raises(DataError, match=message) as info:
        io.read_parquet(path, ["x"], finite=["x"], nonnegative=["x"])
    assert "\n" not in str(info.value) and "dvc repro" in str(info.value)


def test_read_parquet_detects_a_flipped_byte_in_a_data_page(tmp_path):
    frame = pd.DataFrame({"x": np.linspace(0.0, 1.0, 512)})
    path = io.write_parquet(frame, tmp_path / "t.parquet")
    data = bytearray(path.read_bytes())
    pages = bytes(data).index(b"PAR1") + 4
    data[pages + 200] ^= 0x10  # inside the (compressed) column chunk
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"not a readable Parquet file"):
        io.read_parquet(path)


def test_write_headline_rounds_and_keeps_it_short(tmp_path):
    path = io.write_headline(
        {"share_band_pass": 0.123456789, "maps": 64, "psnr_y": {"vfss": 27.123456, "vgg": float("nan")}},
        tmp_path / "metrics" / "tuning.json",
    )
    assert json.loads(path.read_text()) == {
        "maps": 64,
        "psnr_y": {"vfss": 27.1235, "vgg": None},
        "share_band_pass": 0.1235,
    }
    with pytest.raises(ValueError, match="more than 3"):
        io.write_headline({f"k{i}": i for i in range(4)}, tmp_path / "m.json", limit=3)
    with pytest.raises(ValueError, match="nested more than one level"):
        io.write_headline({"a": {"b": {"c": 1}}}, tmp_path / "m.json")
