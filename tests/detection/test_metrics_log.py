"""metrics.jsonl: appended line by line (flushed, fsynced), a torn last line dropped on read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from alrp_cli.detection import metrics_log
from alrp_cli.detection.metrics_log import MetricsLog
from alrp_cli.errors import UserError
from analysis.jsonl import read_jsonl


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_append_adds_one_line_without_rewriting(tmp_path: Path, monkeypatch) -> None:
    synced = []
    monkeypatch.setattr(metrics_log.os, "fsync", lambda fd: synced.append(fd))
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    log.flush()  # a new run starts with an empty file
    assert path.read_bytes() == b""
    inode = os.stat(path).st_ino
    records = [{"type": "step", "iter": i, "loss": 1.0 / (i + 1)} for i in range(1, 6)]
    before = b""
    for n, rec in enumerate(records, start=1):
        log.append(rec)
        data = path.read_bytes()
        # The earlier bytes are untouched (same file, same prefix): an append, not a rewrite.
        assert data.startswith(before) and data.count(b"\n") == n
        assert os.stat(path).st_ino == inode
        before = data
    assert len(synced) == len(records)
    assert _lines(path) == records == log.records


def test_non_finite_values_become_null(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path / "m.jsonl")
    log.append({"type": "step", "iter": 1, "loss": float("nan"), "w": float("inf"), "ok": 2.0})
    assert _lines(tmp_path / "m.jsonl") == [
        {"type": "step", "iter": 1, "loss": None, "w": None, "ok": 2.0}
    ]


def test_deferred_records_are_written_with_the_next_append(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    log = MetricsLog(path)
    log.append({"iter": 1}, flush=False)
    assert not path.exists()
    log.append({"iter": 2})
    assert _lines(path) == [{"iter": 1}, {"iter": 2}]


def test_reader_drops_a_torn_last_line_only(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"iter": 1}\n\n{"iter": 2}\n{"iter": 3, "lo')
    assert read_jsonl(path) == [{"iter": 1}, {"iter": 2}]
    path.write_text('{"iter": 1}\n{"iter": 2')  # torn
    assert read_jsonl(path) == [{"iter": 1}]
    path.write_text('{"iter": 1}\n{"iter": 2}')  # complete record, newline not yet written
    assert read_jsonl(path) == [{"iter": 1}, {"iter": 2}]
    path.write_text('{"iter": 1}\nnot json\n{"iter": 3}\n')  # damage inside is an error
    with pytest.raises(UserError, match=r"m\.jsonl: line 2: not valid JSON"):
        read_jsonl(path)
    path.write_text("[1, 2]\n")
    with pytest.raises(UserError, match="line 1: expected a JSON object"):
        read_jsonl(path)


def test_resume_keeps_records_up_to_the_checkpoint_and_drops_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    kept = [{"type": "step", "iter": 4}, {"type": "epoch", "iter": 8}]
    later = [{"type": "step", "iter": 12}]
    path.write_text("".join(json.dumps(r) + "\n" for r in kept + later) + '{"type": "st')
    inode = os.stat(path).st_ino
    log = MetricsLog.resume(path, up_to_iter=8)
    assert log.records == kept
    assert _lines(path) == kept and path.read_text().endswith("\n")
    assert os.stat(path).st_ino != inode  # rewritten atomically (a new file renamed over)
    log.append({"type": "step", "iter": 9})
    assert _lines(path) == [*kept, {"type": "step", "iter": 9}]
    assert MetricsLog.resume(tmp_path / "absent.jsonl", up_to_iter=3).records == []
