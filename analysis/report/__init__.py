"""`alrp report`: figures and an index page from runs, analyses and balance checks.

:func:`build_report` is the whole command as a library call: load the inputs
(:mod:`.inputs`), draw and save the figures (:mod:`.build`), write ``index.md`` and
``index.html`` (:mod:`.index`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis.report.build import FIGURES, FORMATS, FigureResult, make_figures, parse_formats
from analysis.report.index import Table, input_sources, key_tables, write_index
from analysis.report.inputs import ReportInputs, input_kind, load_inputs

__all__ = [
    "FIGURES",
    "FORMATS",
    "FigureResult",
    "Report",
    "ReportInputs",
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

    def to_json(self) -> dict[str, Any]:
        """A manifest for machines (``alrp report --json``)."""
        return {
            "version": 1,
            "out": str(self.out),
            "index": {"md": str(self.index_md), "html": str(self.index_html)},
            "figures": [
                {
                    "number": f.number,
                    "key": f.key,
                    "title": f.title,
                    "files": {fmt: str(p) for fmt, p in f.files.items()},
                    "skipped": f.skipped,
                    "notes": f.notes,
                }
                for f in self.figures
            ],
            "tables": [
                {"title": t.title, "columns": t.columns, "rows": t.rows} for t in self.tables
            ],
            "warnings": self.warnings,
        }


def build_report(
    inputs: ReportInputs,
    out: str | Path,
    *,
    formats: Sequence[str] = ("png",),
    dpi: int = 200,
    on_figure: Callable[[FigureResult], None] | None = None,
) -> Report:
    """Write every figure the inputs support and the index pages under ``out``."""
    out = Path(out)
    figures = make_figures(inputs, out, formats=formats, dpi=dpi, on_figure=on_figure)
    tables = key_tables(inputs)
    md, page = write_index(figures, tables, out, inputs.warnings, input_sources(inputs))
    return Report(out, figures, tables, md, page, list(inputs.warnings))
