"""``metrics.jsonl``: one JSON object per line (step, epoch and eval records).

Each record is appended as one line, then flushed and fsynced, so it is on disk once
:meth:`MetricsLog.append` returns and its cost does not grow with the log (a COCO run
writes tens of thousands of records). A crash can leave at most a torn last line, which
:func:`analysis.jsonl.read_jsonl` drops. On resume the records after the checkpoint's
iteration are dropped and the file is rewritten atomically, so a resumed run's log
equals an uninterrupted run's.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from alrp_cli.atomic import write_text
from analysis.jsonl import read_jsonl


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, allow_nan=False) + "\n"


class MetricsLog:
    """Append-only JSON Lines log at ``path``; ``records`` holds every record it holds."""

    def __init__(self, path: str | Path, records: list[dict[str, Any]] | None = None) -> None:
        self.path = Path(path)
        self.records: list[dict[str, Any]] = list(records or [])
        self._unwritten = 0  # records appended with flush=False, not yet on disk

    @classmethod
    def resume(cls, path: str | Path, *, up_to_iter: int) -> MetricsLog:
        """Read an existing log, keep records with ``iter <= up_to_iter``, rewrite it atomically."""
        path = Path(path)
        records = read_jsonl(path) if path.exists() else []
        log = cls(path, [r for r in records if r.get("iter", 0) <= up_to_iter])
        log.flush()
        return log

    def append(self, record: dict[str, Any], *, flush: bool = True) -> None:
        """Add one record (non-finite floats become null): one line, flushed and fsynced.

        With ``flush=False`` the record waits in memory for the next append or :meth:`flush`.
        """
        self.records.append({k: _clean(v) for k, v in record.items()})
        self._unwritten += 1
        if not flush:
            return
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write("".join(_line(r) for r in self.records[-self._unwritten :]))
            fh.flush()
            os.fsync(fh.fileno())
        self._unwritten = 0

    def flush(self) -> None:
        """Write the whole file atomically (a new run's empty log; a resumed run's kept part)."""
        write_text(self.path, "".join(_line(r) for r in self.records))
        self._unwritten = 0
