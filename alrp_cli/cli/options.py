"""Option conventions shared by every command, so that one spelling means the same everywhere.

- ``--out`` names a folder, ``-o/--output`` a file;
- every ``--seed`` takes 0..SEED_MAX; every ``--device`` defaults to ``auto``;
- ``--json -`` writes the JSON to standard output, and the tables go to stderr instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import typer
from rich.console import Console

from alrp_cli.errors import UserError

SEED_MAX = 2**32 - 1  # numpy's and torch's seed range; every --seed is 0..SEED_MAX
JSON_HELP = " '-' writes it to standard output (the tables then go to stderr)."


def table_console(json_path: Path | None, *, pipe_width: int | None = None) -> Console:
    """Where a command prints its tables: standard output, or stderr when ``--json -``
    puts the JSON there (so that ``alrp ... --json - | jq`` reads JSON alone). Not a
    terminal (a pipe, a file): ``pipe_width`` columns, so wide tables are not cut at 80."""
    stderr = json_path is not None and str(json_path) == "-"
    console = Console(stderr=stderr)
    if pipe_width is not None and not console.is_terminal:
        console = Console(stderr=stderr, width=pipe_width)
    return console


T = TypeVar("T")


def renamed(new: T | None, old: T | None, *, new_name: str, old_name: str) -> T | None:
    """The value of an option renamed in this release, given under its new or old spelling.

    The old spelling still works for one release, with a deprecation line on stderr; both at
    once is a :class:`UserError`.
    """
    if old is None:
        return new
    if new is not None:
        raise UserError(f"{old_name} is the old spelling of {new_name}; give {new_name} only")
    typer.echo(
        f"warning: {old_name} is deprecated here and goes in the next release; use {new_name}",
        err=True,
    )
    return old
