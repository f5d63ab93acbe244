"""The one progress-bar style every command uses: on stderr, gone when done."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def progress_bar(console: Console | None = None, *, transient: bool = True) -> Progress:
    """A Rich progress display: description, bar, done/total, elapsed time (stderr).

    Disabled when the console is not a terminal, so logs and pipes get no stray lines.
    """
    console = console or Console(stderr=True)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=transient,
        disable=not console.is_terminal,
    )
