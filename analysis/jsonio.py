"""JSON reading with one-line errors, and the JSON type names used in messages."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from alrp_cli.errors import UserError


def read_json(path: str | os.PathLike[str], what: str) -> Any:
    """Parse a JSON file; any failure becomes a one-line UserError naming the file.

    The one JSON reader of every command, so that a file gets the same message everywhere
    (``what`` names the kind of file expected, e.g. "COCO results").
    """
    p = Path(path)
    expected = f"expected {'an' if what[:1].lower() in 'aeiou' else 'a'} {what} JSON file"
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{p}: no such file ({what})") from None
    except IsADirectoryError:
        raise UserError(f"{p}: is a directory, {expected}") from None
    except OSError as err:
        raise UserError(f"{p}: cannot read ({err.strerror or err})") from None
    if not raw:
        raise UserError(f"{p}: empty file, {expected}")
    if not raw.strip():
        raise UserError(f"{p}: holds only whitespace, {expected}")
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise UserError(f"{p}: not a JSON file (not UTF-8 text)") from None
    except json.JSONDecodeError as err:
        raise UserError(f"{p}: not valid JSON ({err.msg} at line {err.lineno})") from None
    except RecursionError:
        raise UserError(f"{p}: not valid JSON (nested too deeply)") from None


def json_type(obj: Any) -> str:
    """How a message names the JSON type of ``obj`` ("a list", "null", ...)."""
    if obj is None:
        return "null"
    if isinstance(obj, bool):
        return "a boolean"
    if isinstance(obj, int | float):
        return "a number"
    if isinstance(obj, str):
        return "a string"
    if isinstance(obj, list):
        return "a list"
    if isinstance(obj, dict):
        return "an object"
    return type(obj).__name__


def is_int(x: Any) -> bool:
    """A JSON integer (or numpy integer); booleans are not."""
    return type(x) is int or isinstance(x, np.integer)


def is_num(x: Any) -> bool:
    """A JSON number (or numpy number); booleans are not."""
    return type(x) in (int, float) or isinstance(x, np.integer | np.floating)
