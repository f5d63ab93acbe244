"""The one progress-bar style every command uses: on stderr, gone when done."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _InfoColumn(ProgressColumn):
    """The task's ``info`` field (e.g. training's running loss), empty when it has none."""

    def render(self, task: Task) -> Text:
        return Text(str(task.fields.get("info", "")))


def progress_bar(console: Console | None = None, *, transient: bool = True) -> Progress:
    """A Rich progress display: description, bar, done/total, elapsed and remaining time,
    and the task's ``info`` field when it has one (stderr).

    Disabled when the console is not a terminal, so logs and pipes get no stray lines.
    """
    console = console or Console(stderr=True)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        _InfoColumn(),
        console=console,
        transient=transient,
        disable=not console.is_terminal,
    )
