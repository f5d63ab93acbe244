"""The report's index pages: ``index.md`` and a self-contained ``index.html``.

Both show every figure with its caption (what to look for), list the skipped figures with
the reason, and carry the key tables. The HTML embeds its images as data URIs and loads
nothing from the network; its links point only to files the report wrote.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alrp_cli import registry
from alrp_cli.atomic import write_text
from analysis.report.build import FigureResult, headline_table
from analysis.report.inputs import ReportInputs


@dataclass
class Table:
    """A small table: ``values`` hold numbers (None where undefined) and labels.

    ``formats`` gives each column's format spec ("" for text); :attr:`rows` are the cells as
    shown, with "–" for a missing or undefined number.
    """

    title: str
    columns: list[str]
    values: list[list[Any]]
    formats: list[str]
    note: str = ""

    @property
    def rows(self) -> list[list[str]]:
        """The cells as text: numbers formatted, None / NaN as "–"."""
        return [
            [_num(v, spec) if spec else str(v) for v, spec in zip(row, self.formats, strict=True)]
            for row in self.values
        ]

    def to_json(self) -> dict[str, Any]:
        """Title, columns and rows of plain JSON numbers (null where undefined)."""
        return {
            "title": self.title,
            "columns": list(self.columns),
            "rows": [
                [
                    _plain(v, integer=spec == ".0f")
                    for v, spec in zip(row, self.formats, strict=True)
                ]
                for row in self.values
            ],
            "note": self.note,
        }


def _plain(value: Any, *, integer: bool = False) -> Any:
    """A JSON-ready scalar: numpy numbers to Python, NaN / inf / NA to None.

    With ``integer``, a whole number becomes an int (counts read back from a float frame).
    """
    if value is None or isinstance(value, str | bool):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None if pd.isna(value) else str(value)
    if not math.isfinite(number):
        return None
    whole = isinstance(value, int | np.integer) or (integer and number.is_integer())
    return int(number) if whole else number


@dataclass
class Source:
    """One input of the report and what it was made from: (what, value) details."""

    kind: str
    label: str
    path: str
    details: list[tuple[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The source as a JSON object."""
        return {"kind": self.kind, "label": self.label, "path": self.path, **dict(self.details)}


def _num(value: Any, spec: str = ".3f") -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "–"
    return format(number, spec) if math.isfinite(number) else "–"


def _flag(value: Any) -> str:
    return {True: "yes", False: "no"}.get(value, "–") if isinstance(value, bool) else "–"


def key_tables(inputs: ReportInputs) -> list[Table]:
    """The tables of the report: models' headline numbers, balance checks, training runs."""
    tables = []
    if inputs.models:
        frame = headline_table(inputs)
        cols = [
            ("AP", "AP"),
            ("AP50", "AP50"),
            ("AP75", "AP75"),
            ("moLRP", "moLRP"),
            ("moLRP_loc", "oLRP loc"),
            ("moLRP_FP", "oLRP FP"),
            ("moLRP_FN", "oLRP FN"),
            *[(m.key, m.headline) for m in registry.measures() if m.headline],
            ("spearman", "Spearman ρ"),
            ("n_tp", "TPs"),
        ]
        values = [
            [str(label)] + [_plain(row.get(c)) for c, _ in cols] for label, row in frame.iterrows()
        ]
        tables.append(
            Table(
                "Models",
                ["model"] + [name for _, name in cols],
                values,
                [""] + [".3f"] * (len(cols) - 1) + [".0f"],
                "AP: COCO AP@[.5:.95]. oLRP and its components, the aLRP and AP loss values: "
                "lower is better. Spearman ρ: score against IoU over all true positives. "
                "–: undefined (e.g. no ground truth of that size).",
            )
        )
    if inputs.balances:
        values = []
        for check in inputs.balances:
            for rec in check.losses.to_dict("records"):
                values.append(
                    [
                        check.label,
                        " ".join(rec[k] for k in ("name", "part") if isinstance(rec.get(k), str))
                        or "–",
                        _flag(rec.get("checked")),
                        _flag(rec.get("passed")),
                        _plain(rec.get("trials")),
                        _plain(rec.get("worst_rel_gap")),
                        _plain(rec.get("median_ratio")),
                    ]
                )
        tables.append(
            Table(
                "Balance checks",
                ["input", "loss", "checked", "passed", "trials", "worst gap", "Σpos/Σneg"],
                values,
                ["", "", "", "", ".0f", ".2e", ".3g"],
                "Worst gap: the largest relative gap |Σpos − Σneg| / Σpos over trials "
                "(|Σg| / Σ|g| over the positives for a part that moves only them, as Rank & "
                "Sort's sorting part); Theorem 2 is checked for the ranking losses (gap ≈ 0); "
                "focal and BCE show the imbalance a ranking loss removes (median Σpos/Σneg).",
            )
        )
    if inputs.runs:
        values = []
        for run in inputs.runs:
            m = run.metrics
            epochs = m[m["type"] == "epoch"] if "type" in m else m.iloc[:0]
            evals = m[m["type"] == "eval"] if "type" in m else m.iloc[:0]
            last = epochs.iloc[-1] if len(epochs) else None
            best = best_epoch = None
            if "AP" in evals and evals["AP"].notna().any():
                top = evals.loc[evals["AP"].idxmax()]
                best, best_epoch = _plain(top["AP"]), _plain(top.get("epoch"))
            values.append(
                [
                    run.label,
                    run.loss,
                    len(epochs),
                    _plain(m["iter"].max()) if "iter" in m and len(m) else None,
                    _plain(None if last is None else last.get("cls")),
                    _plain(None if last is None else last.get("loc")),
                    _plain(None if last is None else last.get("sb_weight")),
                    best,
                    best_epoch,
                ]
            )
        tables.append(
            Table(
                "Training runs",
                ["run", "loss", "epochs", "iters", "L_cls", "L_loc", "w", "best AP", "at epoch"],
                values,
                ["", "", ".0f", ".0f", ".3f", ".3f", ".2f", ".3f", ".0f"],
                "L_cls, L_loc and the self-balance weight w: the last epoch record of "
                "metrics.jsonl.",
            )
        )
    return tables


def input_sources(inputs: ReportInputs) -> list[Source]:
    """Every input and what it was made from, in the order the figures use them."""
    sources = []
    runs = {r.label: r for r in inputs.runs}
    for m in inputs.models:
        if m.evaluation is not None and m.label in runs:
            continue  # shown with its run
        details = [("detections", str(m.record.get("path", "–")))]
        details += [
            ("ground truth", m.gt or "not recorded"),
            ("IoU threshold", f"{m.iou_threshold:g}"),
        ]
        sources.append(Source("analysis", m.label, str(m.source), details))
    models = {m.label: m for m in inputs.models if m.evaluation is not None}
    for r in inputs.runs:
        details = [("loss", r.loss)]
        model = models.get(r.label)
        if model is not None:
            details += [
                ("analysed", model.evaluation or "–"),
                ("detections", str(model.record.get("path", "–"))),
                ("ground truth", model.gt or "–"),
                ("IoU threshold", f"{model.iou_threshold:g}"),
            ]
        sources.append(Source("run", r.label, str(r.source), details))
    for b in inputs.balances:
        sources.append(
            Source("check-balance", b.label, str(b.source), [("trials", str(len(b.trials)))])
        )
    return sources


def _md_table(table: Table) -> str:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    lines = [
        "| " + " | ".join(esc(c) for c in table.columns) + " |",
        "|" + "|".join("---" for _ in table.columns) + "|",
    ]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def _rel(path: Path, out: Path) -> str:
    return path.relative_to(out).as_posix()


def render_markdown(
    results: Sequence[FigureResult],
    tables: Sequence[Table],
    out: Path,
    warnings: Sequence[str],
    sources: Sequence[Source] = (),
    made: str = "",
) -> str:
    """The index.md text; figure paths relative to ``out``."""
    parts = ["# alrp report", ""]
    if made:
        parts += [f"Made {made}.", ""]
    if sources:
        parts += ["Made from:", ""]
        for src in sources:
            parts.append(f"- {src.label} ({src.kind}): `{src.path}`")
            parts += [f"  - {what}: `{value}`" for what, value in src.details]
        parts.append("")
    if warnings:
        parts += ["## Warnings", "", *(f"- {w}" for w in warnings), ""]
    for fig in results:
        if fig.skipped:
            continue
        parts += [f"## Figure {fig.number}. {fig.title}", ""]
        shown = fig.files.get("png") or fig.files.get("svg")
        if shown is not None:
            parts += [f"![{fig.title}]({_rel(shown, out)})", ""]
        parts += [fig.caption, ""]
        parts += [*(f"*{n}*" for n in fig.notes), ""] if fig.notes else []
        links = ", ".join(f"[{fmt}]({_rel(p, out)})" for fmt, p in fig.files.items())
        parts += [f"Files: {links}", ""]
    skipped = [fig for fig in results if fig.skipped]
    if skipped:
        parts += ["## Skipped figures", ""]
        parts += [f"- Figure {fig.number} ({fig.title}): {fig.skipped}." for fig in skipped]
        parts.append("")
    for table in tables:
        parts += [f"## {table.title}", "", _md_table(table), ""]
        if table.note:
            parts += [table.note, ""]
    return "\n".join(parts)


#: CSS pixels per inch of figure: 9-pt figure text shows at the body's 16 px (CSS has 96
#: px per inch, so 96 x 16 / 12), whatever the PNG's dpi.
PX_PER_INCH = 128

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 60rem;
       margin: 2rem auto; padding: 0 1rem; color: #222; line-height: 1.45; font-size: 16px; }
figure { margin: 2rem 0; }
figure img { display: block; box-sizing: border-box; max-width: 100%; height: auto;
             border: 1px solid #ddd; }
figcaption { font-size: 0.95rem; } .note { color: #555; font-style: italic; }
code, li, figcaption, p { overflow-wrap: anywhere; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: 0.9rem; margin: 0.5rem 0; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; } th { background: #f3f3f3; }
.warn { background: #fff6d6; border-left: 4px solid #e0a800; padding: 0.25rem 0.75rem; }
@media print {
  body { max-width: none; margin: 0; }
  figure { break-inside: avoid; } .scroll { overflow: visible; }
  a[href]::after { content: none; }
}
"""

_MIME = {"png": "image/png", "svg": "image/svg+xml"}

#: Narrow variants are shown up to this viewport width (CSS px).
NARROW_MAX_WIDTH = 600


def _data_uri(path: Path, fmt: str) -> str:
    return f"data:{_MIME[fmt]};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _size(fig_size: tuple[float, float] | None) -> str:
    if fig_size is None:
        return ""
    width, height = (round(v * PX_PER_INCH) for v in fig_size)
    return f' width="{width}" height="{height}"'


def _image(fig: FigureResult) -> str:
    """The figure's <img>, with a <picture> source for its narrow variant when it has one."""
    e = html.escape
    fmt = "png" if "png" in fig.files else "svg" if "svg" in fig.files else None
    if fmt is None:
        return ""
    img = f'<img alt="{e(fig.title)}"{_size(fig.size)} src="{_data_uri(fig.files[fmt], fmt)}">'
    narrow = fig.narrow.get(fmt)
    if narrow is None:
        return img
    source = (
        f'<source media="(max-width: {NARROW_MAX_WIDTH}px)"{_size(fig.narrow_size)} '
        f'srcset="{_data_uri(narrow, fmt)}">'
    )
    return f"<picture>{source}{img}</picture>"


def render_html(
    results: Sequence[FigureResult],
    tables: Sequence[Table],
    out: Path,
    warnings: Sequence[str],
    sources: Sequence[Source] = (),
    made: str = "",
) -> str:
    """A self-contained index.html: images inlined as data URIs, inline CSS, no scripts.

    Figures show at :data:`PX_PER_INCH` (their text at body size) and shrink to fit a
    narrow screen; a figure with a narrow variant swaps to it there; tables scroll
    sideways inside their own box rather than widening the page.
    """
    e = html.escape
    body = ["<h1>alrp report</h1>"]
    if made:
        body.append(f"<p>Made {e(made)}.</p>")
    if sources:
        body.append("<p>Made from:</p><ul>")
        for src in sources:
            body.append(f"<li>{e(src.label)} ({e(src.kind)}): <code>{e(src.path)}</code>")
            if src.details:
                body.append("<ul>")
                body += [f"<li>{e(w)}: <code>{e(v)}</code></li>" for w, v in src.details]
                body.append("</ul>")
            body.append("</li>")
        body.append("</ul>")
    if warnings:
        body.append('<h2>Warnings</h2><ul class="warn">')
        body += [f"<li>{e(w)}</li>" for w in warnings]
        body.append("</ul>")
    for fig in results:
        if fig.skipped:
            continue
        body.append(f'<figure id="{e(fig.key)}">')
        body.append(_image(fig))
        body.append(f"<figcaption><strong>Figure {fig.number}. {e(fig.title)}.</strong> ")
        body.append(e(fig.caption))
        body += [f'<br><span class="note">{e(n)}</span>' for n in fig.notes]
        links = ", ".join(f'<a href="{e(_rel(p, out))}">{e(f)}</a>' for f, p in fig.files.items())
        body.append(f"<br>Files: {links}</figcaption></figure>")
    skipped = [fig for fig in results if fig.skipped]
    if skipped:
        body.append("<h2>Skipped figures</h2><ul>")
        body += [f"<li>Figure {f.number} ({e(f.title)}): {e(f.skipped)}.</li>" for f in skipped]
        body.append("</ul>")
    for table in tables:
        body.append(f'<h2>{e(table.title)}</h2><div class="scroll"><table><thead><tr>')
        body += [f"<th>{e(c)}</th>" for c in table.columns]
        body.append("</tr></thead><tbody>")
        for row in table.rows:
            body.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>")
        body.append("</tbody></table></div>")
        if table.note:
            body.append(f'<p class="note">{e(table.note)}</p>')
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>alrp report</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def write_index(
    results: Sequence[FigureResult],
    tables: Sequence[Table],
    out: Path,
    warnings: Sequence[str],
    sources: Sequence[Source] = (),
    made: str = "",
) -> tuple[Path, Path]:
    """Write ``out/index.md`` and ``out/index.html`` atomically; return their paths."""
    md, page = out / "index.md", out / "index.html"
    write_text(md, render_markdown(results, tables, out, warnings, sources, made))
    write_text(page, render_html(results, tables, out, warnings, sources, made))
    return md, page
