"""Signals during `alrp train`: the first Ctrl-C asks for a clean stop, a second one (not
torchrun's echo of the first) stops at once and says nothing was saved."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

import alrp_cli.detection.train as library
from tests.helpers.world import invoke


def test_the_second_signal_stops_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(library.time, "monotonic", lambda: now[0])
    with library._stop_on_signals() as should_stop:
        assert should_stop() is False
        os.kill(os.getpid(), signal.SIGINT)
        assert should_stop() == signal.SIGINT
        now[0] += 0.5  # torchrun forwards the terminal's Ctrl-C: the same press, ignored
        os.kill(os.getpid(), signal.SIGTERM)
        assert should_stop() == signal.SIGINT
        now[0] += 1.0
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_the_cli_says_that_nothing_was_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted_twice(config, *, on_event=None):
        start = {"type": "start", "run_dir": str(tmp_path / "run"), "device": "cpu",
                 "epochs": 1, "iters_per_epoch": 1, "total_iters": 1, "start_iter": 0}  # fmt: skip
        on_event(start)
        raise KeyboardInterrupt

    monkeypatch.setattr(library, "train", interrupted_twice)
    result = invoke(["train", "--out", tmp_path / "run"])
    assert result.exit_code == 130
    said = " ".join(result.stderr.split())
    assert f"nothing was saved since the last checkpoint ({tmp_path / 'run'}/last.pt)" in said
