"""``metrics.jsonl``: one JSON object per line (step, epoch and eval records).

The file is rewritten atomically on each write (it is small next to a checkpoint), so a
crash never leaves a torn line; on resume the records after the checkpoint are dropped, so a
resumed run's log equals an uninterrupted run's.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from alrp_cli.atomic import write_text


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsLog:
    """Append-only list of records, mirrored to ``path`` as JSON Lines."""

    def __init__(self, path: str | Path, records: list[dict[str, Any]] | None = None) -> None:
        self.path = Path(path)
        self.records: list[dict[str, Any]] = list(records or [])

    @classmethod
    def resume(cls, path: str | Path, *, up_to_iter: int) -> MetricsLog:
        """Read an existing log, keeping records with ``iter <= up_to_iter``."""
        path = Path(path)
        records = []
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    record = json.loads(line)
                    if record.get("iter", 0) <= up_to_iter:
                        records.append(record)
        log = cls(path, records)
        log.flush()
        return log

    def append(self, record: dict[str, Any], *, flush: bool = True) -> None:
        """Add one record (non-finite floats become null) and rewrite the file."""
        self.records.append({k: _clean(v) for k, v in record.items()})
        if flush:
            self.flush()

    def flush(self) -> None:
        """Write every record atomically."""
        text = "".join(json.dumps(r, allow_nan=False) + "\n" for r in self.records)
        write_text(self.path, text)
