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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alrp_cli.atomic import write_text
from analysis.report.build import FigureResult, headline_table
from analysis.report.inputs import ReportInputs


@dataclass
class Table:
    """A small table of already formatted cells."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    note: str = ""


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
            ("alrp", "aLRP loss"),
            ("ap_loss", "AP loss"),
            ("spearman", "Spearman ρ"),
        ]
        rows = []
        for label, row in frame.iterrows():
            cells = [str(label)] + [_num(row.get(c)) for c, _ in cols]
            rows.append([*cells, _num(row.get("n_tp"), ".0f")])
        tables.append(
            Table(
                "Models",
                ["model"] + [name for _, name in cols] + ["TPs"],
                rows,
                "AP: COCO AP@[.5:.95]. oLRP and its components, the aLRP and AP loss values: "
                "lower is better. Spearman ρ: score against IoU over all true positives.",
            )
        )
    if inputs.balances:
        rows = []
        for check in inputs.balances:
            for rec in check.losses.to_dict("records"):
                rows.append(
                    [
                        check.label,
                        str(rec.get("name", "–")),
                        _flag(rec.get("checked")),
                        _flag(rec.get("passed")),
                        _num(rec.get("trials"), ".0f"),
                        _num(rec.get("worst_rel_gap"), ".2e"),
                        _num(rec.get("median_ratio"), ".3g"),
                    ]
                )
        tables.append(
            Table(
                "Balance checks",
                ["input", "loss", "checked", "passed", "trials", "worst gap", "Σpos/Σneg"],
                rows,
                "Worst gap: the largest relative gap |Σpos − Σneg| / Σpos over trials; Theorem 2 "
                "is checked for aLRP and AP Loss (gap ≈ 0); focal and BCE show the imbalance "
                "a ranking loss removes (median Σpos/Σneg).",
            )
        )
    if inputs.runs:
        rows = []
        for run in inputs.runs:
            m = run.metrics
            epochs = m[m["type"] == "epoch"] if "type" in m else m.iloc[:0]
            evals = m[m["type"] == "eval"] if "type" in m else m.iloc[:0]
            last = epochs.iloc[-1] if len(epochs) else None
            best, best_epoch = "–", "–"
            if "AP" in evals and evals["AP"].notna().any():
                top = evals.loc[evals["AP"].idxmax()]
                best, best_epoch = _num(top["AP"]), _num(top.get("epoch"), ".0f")
            rows.append(
                [
                    run.label,
                    str(run.config.get("loss", "–")),
                    str(len(epochs)),
                    _num(m["iter"].max(), ".0f") if "iter" in m and len(m) else "–",
                    _num(None if last is None else last.get("cls")),
                    _num(None if last is None else last.get("loc")),
                    _num(None if last is None else last.get("sb_weight"), ".2f"),
                    best,
                    best_epoch,
                ]
            )
        tables.append(
            Table(
                "Training runs",
                ["run", "loss", "epochs", "iters", "L_cls", "L_loc", "w", "best AP", "at epoch"],
                rows,
                "L_cls, L_loc and the self-balance weight w: the last epoch record of "
                "metrics.jsonl.",
            )
        )
    return tables


def input_sources(inputs: ReportInputs) -> list[tuple[str, str, str]]:
    """(kind, label, path) of every input, in the order the figures use them."""
    rows = [("analysis", m.label, str(m.source)) for m in inputs.models]
    rows += [("run", r.label, str(r.source)) for r in inputs.runs]
    rows += [("check-balance", b.label, str(b.source)) for b in inputs.balances]
    return rows


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
    sources: Sequence[tuple[str, str, str]] = (),
) -> str:
    """The index.md text; figure paths relative to ``out``."""
    parts = ["# alrp report", ""]
    if sources:
        parts += ["Made from:", ""]
        parts += [f"- {label} ({kind}): `{path}`" for kind, label, path in sources]
        parts.append("")
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
    if warnings:
        parts += ["## Warnings", "", *(f"- {w}" for w in warnings), ""]
    return "\n".join(parts)


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 60rem;
       margin: 2rem auto; padding: 0 1rem; color: #222; line-height: 1.45; }
figure { margin: 2rem 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.95rem; } .note { color: #555; font-style: italic; }
table { border-collapse: collapse; font-size: 0.9rem; margin: 0.5rem 0; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }
th:first-child, td:first-child { text-align: left; } th { background: #f3f3f3; }
"""

_MIME = {"png": "image/png", "svg": "image/svg+xml"}


def render_html(
    results: Sequence[FigureResult],
    tables: Sequence[Table],
    out: Path,
    warnings: Sequence[str],
    sources: Sequence[tuple[str, str, str]] = (),
) -> str:
    """A self-contained index.html: images inlined as data URIs, inline CSS, no scripts."""
    e = html.escape
    body = ["<h1>alrp report</h1>"]
    if sources:
        body.append("<p>Made from:</p><ul>")
        body += [f"<li>{e(lb)} ({e(k)}): <code>{e(p)}</code></li>" for k, lb, p in sources]
        body.append("</ul>")
    for fig in results:
        if fig.skipped:
            continue
        body.append(f'<figure id="{e(fig.key)}">')
        fmt = "png" if "png" in fig.files else "svg" if "svg" in fig.files else None
        if fmt is not None:
            data = base64.b64encode(fig.files[fmt].read_bytes()).decode("ascii")
            body.append(f'<img alt="{e(fig.title)}" src="data:{_MIME[fmt]};base64,{data}">')
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
        body.append(f"<h2>{e(table.title)}</h2><table><thead><tr>")
        body += [f"<th>{e(c)}</th>" for c in table.columns]
        body.append("</tr></thead><tbody>")
        for row in table.rows:
            body.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>")
        body.append("</tbody></table>")
        if table.note:
            body.append(f'<p class="note">{e(table.note)}</p>')
    if warnings:
        body.append("<h2>Warnings</h2><ul>" + "".join(f"<li>{e(w)}</li>" for w in warnings))
        body.append("</ul>")
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
    sources: Sequence[tuple[str, str, str]] = (),
) -> tuple[Path, Path]:
    """Write ``out/index.md`` and ``out/index.html`` atomically; return their paths."""
    md, page = out / "index.md", out / "index.html"
    write_text(md, render_markdown(results, tables, out, warnings, sources))
    write_text(page, render_html(results, tables, out, warnings, sources))
    return md, page
