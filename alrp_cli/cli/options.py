"""Option conventions shared by every command, so that one spelling means the same everywhere.

- ``--out`` names a folder, ``-o/--output`` a file;
- every ``--seed`` takes 0..SEED_MAX (:data:`alrp_cli.limits.SEED_MAX`); every ``--device``
  defaults to ``auto``;
- ``--json -`` writes the JSON to standard output, and the tables go to stderr instead.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

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
