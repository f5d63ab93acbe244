"""`alrp report`: figures and an index page from runs, analyses and balance checks.

:func:`build_report` is the whole command as a library call: load the inputs
(:mod:`.inputs`), draw and save the figures (:mod:`.build`), write ``index.md`` and
``index.html`` (:mod:`.index`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from alrp_cli import __version__
from analysis.report.build import FIGURES, FORMATS, FigureResult, make_figures, parse_formats
from analysis.report.index import Source, Table, input_sources, key_tables, write_index
from analysis.report.inputs import ReportInputs, input_kind, load_inputs

__all__ = [
    "FIGURES",
    "FORMATS",
    "FigureResult",
    "Report",
    "ReportInputs",
    "Source",
    "Table",
    "build_report",
    "input_kind",
    "load_inputs",
    "parse_formats",
]


@dataclass
class Report:
    """What a report wrote: the figures (or why skipped), the tables, the index pages."""

    out: Path
    figures: list[FigureResult]
    tables: list[Table]
    index_md: Path
    index_html: Path
    warnings: list[str]
    sources: list[Source] = field(default_factory=list)
    made: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A manifest for machines (``alrp report --json``); tables hold plain numbers."""
        return {
            "version": 1,
            "out": str(self.out),
            "made": dict(self.made),
            "inputs": [s.to_json() for s in self.sources],
            "index": {"md": str(self.index_md), "html": str(self.index_html)},
            "figures": [
                {
                    "number": f.number,
                    "key": f.key,
                    "title": f.title,
                    "files": {fmt: str(p) for fmt, p in f.files.items()},
                    "narrow": {fmt: str(p) for fmt, p in f.narrow.items()},
                    "skipped": f.skipped,
                    "notes": f.notes,
                }
                for f in self.figures
            ],
            "tables": [t.to_json() for t in self.tables],
            "warnings": self.warnings,
        }


def build_report(
    inputs: ReportInputs,
    out: str | Path,
    *,
    formats: Sequence[str] = ("png",),
    dpi: int = 200,
    on_figure: Callable[[FigureResult], None] | None = None,
    now: datetime | None = None,
) -> Report:
    """Write every figure the inputs support and the index pages under ``out``.

    The index says when (``now``, default the current UTC time) and with which alrp
    version it was made, and what each input was made from.
    """
    out = Path(out)
    figures = make_figures(inputs, out, formats=formats, dpi=dpi, on_figure=on_figure)
    tables = key_tables(inputs)
    sources = input_sources(inputs)
    when = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    made = {"date": when, "alrp": __version__}
    text = f"on {when} with alrp {__version__}"
    md, page = write_index(figures, tables, out, inputs.warnings, sources, text)
    return Report(out, figures, tables, md, page, list(inputs.warnings), sources, made)
