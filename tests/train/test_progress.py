"""Progress of ``fit``: periodic lines in pipes and logs, a bar on a terminal by default."""

from __future__ import annotations

import io
import re
import sys

import numpy as np
import pytest

from tintin.nn import build_model
from tintin.optim import OptimConfig
from tintin.train import LineProgress, RichProgress, SilentProgress, TrainConfig, fit
from tintin.train.progress import resolve_progress


class FakeClock:
    """Advances ``tick`` seconds each time it is read: every training step looks slow."""

    def __init__(self, tick: float):
        self.now, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(-127, 128, size=(n, 16), dtype=np.int8), rng.integers(0, 4, size=n).astype(np.int64)


def test_lines_at_least_every_interval_with_steps_rate_and_eta():
    x, y = _data()
    clock = FakeClock(tick=3.0)  # 3 s per step: one epoch of 40 steps is two minutes of work
    stream = io.StringIO()
    progress = LineProgress(stream, interval=10.0, clock=clock)
    fit(build_model("mlp", (16,), 4, hidden=8), x, y, TrainConfig(epochs=2, batch_size=1, optim=OptimConfig(lr=0.05)),
        progress=progress)
    lines = stream.getvalue().splitlines()
    step_lines = [line for line in lines if " step " in line]
    # the clock is read once per step: a line as soon as 10 s have passed, i.e. every 4th step (12 s)
    positions = [(int(m.group(1)) - 1) * 40 + int(m.group(2))
                 for m in (re.search(r"epoch (\d)/2  step (\d+)/40", s) for s in step_lines)]
    assert positions[0] <= 4 and all(0 < b - a <= 4 for a, b in zip(positions, positions[1:]))
    assert len(step_lines) >= 80 // 4 - 1
    done = [int(m.group(1)) for m in (re.search(r"\((?:\d+\.\d)% of (\d+) steps\)", s) for s in step_lines) if m]
    assert done and set(done) == {80}
    first = step_lines[0]
    assert re.search(r"epoch 1/2  step \d+/40", first) and "steps/s" in first and "ETA " in first
    rates = [float(re.search(r"([\d.]+) steps/s", s).group(1)) for s in step_lines]
    assert all(0.2 < r < 0.5 for r in rates)  # one step per 3 s of the clock
    etas = [re.search(r"ETA (\S+)", s).group(1) for s in step_lines]
    assert etas[0].endswith("s") and "m" in etas[0]  # minutes left at the start
    assert sum("epoch 2/2" in line and "loss" in line and " step " not in line for line in lines) == 1


def test_no_step_lines_when_steps_are_fast():
    x, y = _data()
    stream = io.StringIO()
    fit(build_model("mlp", (16,), 4, hidden=8), x, y, TrainConfig(epochs=1, batch_size=4, optim=OptimConfig(lr=0.5)),
        progress=LineProgress(stream, interval=10.0, clock=FakeClock(tick=0.001)))
    assert not [line for line in stream.getvalue().splitlines() if " step " in line]


def test_fit_default_is_quiet_off_a_terminal(capsys):
    x, y = _data()
    fit(build_model("mlp", (16,), 4, hidden=8), x, y, TrainConfig(epochs=1, batch_size=8))
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_default_progress_is_a_bar_on_a_terminal(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert isinstance(resolve_progress("auto"), RichProgress)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert isinstance(resolve_progress("auto"), SilentProgress)
    assert isinstance(resolve_progress(True), LineProgress)
    assert isinstance(resolve_progress(None), SilentProgress) and isinstance(resolve_progress(False), SilentProgress)
    with pytest.raises(ValueError, match="progress must be"):
        resolve_progress("bar")


def test_the_bar_counts_every_step_while_redrawing_rarely():
    from rich.console import Console

    x, y = _data()
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    bar = RichProgress(console, refresh=10.0, clock=FakeClock(tick=1.0))  # a redraw every 10th step
    fit(build_model("mlp", (16,), 4, hidden=8), x, y, TrainConfig(epochs=2, batch_size=1, optim=OptimConfig(lr=0.05)),
        progress=bar)
    assert bar.bar.tasks[0].completed == 80  # nothing lost between redraws
