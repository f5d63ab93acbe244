"""JSON Lines reading that tolerates a torn last line (a write cut short by a crash)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from alrp_cli.errors import UserError


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The objects of a JSON Lines file, one per non-blank line, in order.

    A last line that has no newline and does not parse is a record whose write was cut
    short (appends are flushed line by line): it is dropped. Any other line that is not a
    JSON object raises UserError naming the file and the line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file (not UTF-8)") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read ({err.strerror or err})") from None
    lines = text.split("\n")  # a complete file ends with "\n": its last item is ""
    records = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if n == len(lines):
                break
            raise UserError(f"{path}: line {n}: not valid JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise UserError(f"{path}: line {n}: expected a JSON object")
        records.append(record)
    return records
