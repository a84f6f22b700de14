"""Progress: a tqdm bar on a terminal, short periodic lines in a log, silence with TQDM_DISABLE."""

from __future__ import annotations

import io

import pytest

from psychovis.progress import Progress, progress


class Terminal(io.StringIO):
    """A text stream that says it is a terminal (as stderr does in an interactive shell)."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _no_disable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TQDM_DISABLE", raising=False)


def test_a_log_gets_one_short_line_per_tenth() -> None:
    stream = io.StringIO()
    bar = Progress(range(1000), desc="train[vgg]", unit="step", stream=stream)
    for step in bar:
        if step % 100 == 0:
            bar.set_postfix(loss=f"{1 / (step + 1):.4f}")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10 and "\r" not in stream.getvalue()
    assert lines[0].startswith("train[vgg]: 100/1000 step (10 %), loss=")
    assert lines[-1].startswith("train[vgg]: 1000/1000 step (100 %)")
    assert max(len(line) for line in lines) < 80


def test_a_resumed_loop_counts_from_its_start() -> None:
    stream = io.StringIO()
    for _ in Progress(range(51, 101), desc="train", total=100, initial=50, unit="step", stream=stream):
        pass
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("train: 60/100") and len(lines) == 5


def test_unknown_length_logs_at_powers_of_two() -> None:
    stream = io.StringIO()
    for _ in Progress(iter(range(100)), desc="pairs", stream=stream):
        pass
    assert [line.split(": ")[1] for line in stream.getvalue().splitlines()] == [
        f"{n} it" for n in (1, 2, 4, 8, 16, 32, 64)
    ]


def test_a_terminal_gets_a_tqdm_bar() -> None:
    stream = Terminal()
    for _ in Progress(range(20), desc="features", unit="batch", stream=stream):
        pass
    assert "\r" in stream.getvalue() and "20/20" in stream.getvalue()


@pytest.mark.parametrize("stream", [io.StringIO(), Terminal()], ids=["log", "terminal"])
def test_tqdm_disable_and_enabled_false_silence_it(stream: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    for _ in Progress(range(50), desc="x", enabled=False, stream=stream):
        pass
    monkeypatch.setenv("TQDM_DISABLE", "1")
    for _ in Progress(range(50), desc="x", stream=stream):
        pass
    assert stream.getvalue() == ""


def test_progress_wraps_an_iterable_to_stderr(capsys: pytest.CaptureFixture) -> None:
    assert list(progress(range(10), "evaluate", unit="image")) == list(range(10))
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == "evaluate: 10/10 image (100 %)"
