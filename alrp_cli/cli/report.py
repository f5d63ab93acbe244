"""`alrp report`: figures and an index page from runs, analyses and balance checks."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from alrp_cli.cli.options import JSON_HELP, table_console
from alrp_cli.cli.progress import progress_bar
from alrp_cli.errors import UserError
from alrp_cli.outputs import Outputs, write_json_output


def _rich(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    """A Rich table; one too wide for a terminal is turned so models become columns."""
    if len(columns) > 8 and len(rows) <= 6:
        # Models become columns; the corner stays blank (a run named "run" gave "run | run").
        columns, rows = (
            ["", *(row[0] for row in rows)],
            [[name, *(row[k] for row in rows)] for k, name in enumerate(columns) if k],
        )
    table = Table(title=title)
    for k, name in enumerate(columns):
        table.add_column(escape(name), justify="left" if k == 0 else "right")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    return table


def report(
    inputs: list[Path] = typer.Argument(
        ...,
        help="Run directories (alrp train --out; a run that has evaluated is analysed too), "
        "analysis JSONs (alrp analyze --json) and check-balance JSONs (alrp check-balance "
        "--json), in any mix.",
        show_default=False,
        metavar="INPUT",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Folder for figures/, index.md and index.html (required).",
        show_default=False,
    ),
    label: list[str] | None = typer.Option(
        None,
        "--label",
        help="Label of an input, once per input in order (default: the file or run names; "
        "an empty label, --label=, keeps the default).",
        show_default=False,
    ),
    formats: str = typer.Option(
        "png,svg,pdf", "--format", help="Figure formats, comma-separated: png, svg, pdf."
    ),
    dpi: int = typer.Option(200, "--dpi", min=30, max=1200, help="Resolution of PNG figures."),
    json_path: Path | None = typer.Option(
        None,
        "--json",
        help="Also write a manifest of the figures and tables as JSON here." + JSON_HELP,
    ),
    epoch: int | None = typer.Option(
        None,
        "--epoch",
        help="Of run directories, analyse the evaluation of this epoch (default: best AP).",
        show_default=False,
    ),
) -> None:
    """Write the report figures (PNG and vector) and index.md / index.html into --out.

    A figure is made only when the inputs hold its data; the index lists the others and why.
    """
    # Imported here: matplotlib and seaborn are slow to import, and only this command needs them.
    from analysis.report import FIGURES, build_report, load_inputs, parse_formats

    if out is None:
        raise UserError("give --out FOLDER: where the report goes")
    chosen = parse_formats(formats)
    outputs = Outputs(inputs)
    outputs.folder(out, "--out")
    json_path = outputs.file(json_path, "--json", stdout=True)
    err = Console(stderr=True)
    with err.status("reading inputs"):
        loaded = load_inputs(inputs, label, epoch=epoch)
    for warning in loaded.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    with outputs.undo_on_error():
        with progress_bar(err) as progress:
            task = progress.add_task("drawing figures", total=len(FIGURES))
            result = build_report(
                loaded,
                out,
                formats=chosen,
                dpi=dpi,
                on_figure=lambda fig: progress.advance(task),
            )
        if json_path is not None:
            write_json_output(json_path, result.to_json())
    console = table_console(json_path)
    figures = Table(title=f"Report figures in {out}")
    figures.add_column("#", justify="right")
    figures.add_column("figure")
    figures.add_column("written / skipped because")
    for fig in result.figures:
        done = ", ".join(fig.files) if fig.files else f"[dim]{escape(fig.skipped or '')}[/]"
        figures.add_row(str(fig.number), escape(fig.title), done)
    console.print(figures)
    for table in result.tables:
        console.print(_rich(table.title, table.columns, table.rows))
    console.print(f"index: {result.index_md}, {result.index_html}", highlight=False)
