"""Loading report inputs and assembling the index pages, on the small fixtures of
tests/fixtures/report (made by make_fixtures.py in the fixed formats of the other commands)."""

from __future__ import annotations

import csv
import html
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from matplotlib.image import imread

from alrp_cli.errors import UserError
from analysis.report import FIGURES, build_report, input_kind, load_inputs, parse_formats
from analysis.report.build import headline_table
from tests.conftest import REPO

FIX = REPO / "tests" / "fixtures" / "report"
ALL = [FIX / "analysis.json", FIX / "analysis_nocsv.json", FIX / "balance.json"]
ALL += [FIX / "run_alrp", FIX / "run_focal"]


@pytest.fixture(scope="module")
def full_report(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("report")
    return build_report(load_inputs(ALL), out, formats=("png", "svg"), dpi=30)


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src") and value is not None:
                self.refs.append(value)


def test_input_kinds(tmp_path: Path) -> None:
    assert input_kind(FIX / "run_alrp")[0] == "run"
    assert input_kind(FIX / "analysis.json")[0] == "analysis"
    assert input_kind(FIX / "balance.json")[0] == "balance"
    other = tmp_path / "other.json"
    other.write_text('{"images": []}')
    with pytest.raises(UserError, match=r"other\.json: not an analysis JSON"):
        input_kind(other)
    with pytest.raises(UserError, match=r"not a run directory \(no metrics.jsonl"):
        input_kind(tmp_path)
    with pytest.raises(UserError, match=r"nope\.json: no such file"):
        input_kind(tmp_path / "nope.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"files": [')
    with pytest.raises(UserError, match=r"broken\.json: not valid JSON"):
        input_kind(broken)


def test_default_labels_and_overrides() -> None:
    inputs = load_inputs(ALL)
    assert [m.label for m in inputs.models] == ["alrp", "focal", "retina"]
    assert [b.label for b in inputs.balances] == ["balance"]
    assert [r.label for r in inputs.runs] == ["run_alrp", "run_focal"]
    renamed = load_inputs(ALL, ["A", "B", "C", "D", "E"])
    # A several-model analysis prefixes its models; a one-model one is renamed.
    assert [m.label for m in renamed.models] == ["A/alrp", "A/focal", "B"]
    assert [b.label for b in renamed.balances] == ["C"]
    assert [r.label for r in renamed.runs] == ["D", "E"]
    kept = load_inputs(ALL, ["", "", "", "alrp", ""])
    assert [m.label for m in kept.models] == ["alrp", "focal", "retina"]
    assert [r.label for r in kept.runs] == ["alrp", "run_focal"]
    twice = load_inputs([FIX / "analysis_nocsv.json", FIX / "analysis_nocsv.json"])
    assert [m.label for m in twice.models] == ["retina", "retina (2)"]
    with pytest.raises(UserError, match="labels: 1 given for 2 inputs"):
        load_inputs(ALL[:2], ["only-one"])


def test_true_positives_come_from_the_csv() -> None:
    model = load_inputs([FIX / "analysis.json"]).models[0]
    with (FIX / "alrp.detections.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["status"] == "tp"]
    assert len(model.tps) == len(rows) == model.record["ranking"]["pooled"]["n_tp"]
    assert model.tps["iou"].tolist() == [float(r["iou"]) for r in rows]
    assert model.tps["score"].tolist() == [float(r["score"]) for r in rows]
    nocsv = load_inputs([FIX / "analysis_nocsv.json"]).models[0]
    assert nocsv.tps is None and "names no per-detection CSV" in nocsv.tps_note


def _copy_analysis(tmp_path: Path) -> Path:
    for name in ("analysis.json", "alrp.detections.csv", "focal.detections.csv"):
        shutil.copy(FIX / name, tmp_path / name)
    return tmp_path / "analysis.json"


def test_missing_csv_falls_back_with_a_warning(tmp_path: Path) -> None:
    path = _copy_analysis(tmp_path)
    (tmp_path / "focal.detections.csv").unlink()
    inputs = load_inputs([path])
    assert inputs.models[0].tps is not None and inputs.models[1].tps is None
    assert inputs.warnings == [
        f"focal: per-detection CSV {tmp_path / 'focal.detections.csv'} not found"
    ]
    report = build_report(inputs, tmp_path / "out", dpi=30)
    first, second = report.figures[0], report.figures[1]
    assert first.files and "Left out for lack of a per-detection CSV: focal." in first.notes
    assert second.files and "no per-detection CSV: focal" in second.notes[0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("image_id,score,status\n1,0.5,tp\n", r"missing column\(s\) category, iou"),
        (
            "image_id,category_id,category,score,rank,gt_id,iou,status\n1,1,a,0.5,1,3,1.5,tp\n",
            r"line 2: a true positive needs a finite score and iou in \[0, 1\]",
        ),
    ],
)
def test_bad_csv_is_a_user_error(tmp_path: Path, text: str, message: str) -> None:
    path = _copy_analysis(tmp_path)
    (tmp_path / "alrp.detections.csv").write_text(text)
    with pytest.raises(UserError, match=r"alrp\.detections\.csv: " + message):
        load_inputs([path])


def test_bad_analysis_records_are_user_errors(tmp_path: Path) -> None:
    doc = json.loads((FIX / "analysis_nocsv.json").read_text())
    del doc["files"][0]["lrp"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(UserError, match=r"bad\.json: files\[0\]: missing 'lrp'"):
        load_inputs([bad])
    doc = json.loads((FIX / "analysis_nocsv.json").read_text())
    doc["files"][0]["pr_curve"]["precision"].pop()
    bad.write_text(json.dumps(doc))
    with pytest.raises(UserError, match="pr_curve: 101 recall but 100 precision"):
        load_inputs([bad])


def test_bad_metrics_line_is_a_user_error(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(FIX / "run_alrp", run)
    with (run / "metrics.jsonl").open("a") as fh:
        fh.write('{"type": "step", "iter": 99\n')
    n = len((run / "metrics.jsonl").read_text().splitlines())
    with pytest.raises(UserError, match=rf"metrics\.jsonl: line {n}: not valid JSON"):
        load_inputs([run])


def test_parse_formats() -> None:
    assert parse_formats("png, SVG,png") == ("png", "svg")
    with pytest.raises(UserError, match="--format: jpg: choose among png, svg, pdf"):
        parse_formats("png,jpg")


def test_every_figure_is_written_at_its_size(full_report) -> None:
    assert [f.key for f in full_report.figures] == [key for key, _, _ in FIGURES]
    for fig in full_report.figures:
        assert fig.skipped is None
        assert set(fig.files) == {"png", "svg"}
        image = imread(fig.files["png"])
        assert image.shape[0] > 50 and image.shape[1] >= 3.5 * 30
        assert fig.files["svg"].read_text().lstrip().startswith("<?xml")


def test_index_html_is_self_contained(full_report) -> None:
    page = full_report.index_html.read_text()
    parser = _Refs()
    parser.feed(page)
    local = [r for r in parser.refs if not r.startswith("data:")]
    assert local, "links to the figure files"
    for ref in local:
        assert not re.match(r"^[a-z]+:|^//", ref), f"network or absolute reference {ref}"
        assert (full_report.out / ref).is_file(), ref
    embedded = [r for r in parser.refs if r.startswith("data:image/png;base64,")]
    assert len(embedded) == len(FIGURES)
    assert "<script" not in page and "@import" not in page
    for _, _, caption in FIGURES:
        assert html.escape(caption) in page


def test_index_md_links_exist_and_tables_hold_the_json_numbers(full_report) -> None:
    text = full_report.index_md.read_text()
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert len(links) == 3 * len(FIGURES)  # image + png + svg links
    assert all((full_report.out / link).is_file() for link in links)
    doc = json.loads((FIX / "analysis.json").read_text())
    ap = doc["files"][0]["coco"]["AP"]
    assert f"| alrp | {ap:.3f} |" in text
    assert "## Balance checks" in text and "## Training runs" in text
    assert f"- run_focal (run): `{FIX / 'run_focal'}`" in text
    for table in full_report.tables:
        assert all(len(row) == len(table.columns) for row in table.rows), table.title
    runs = full_report.tables[2]
    best = {r[0]: r[-2:] for r in runs.rows}
    assert best["run_alrp"] == ["0.346", "3"]  # the fixture's highest eval AP and its epoch
    assert "## Skipped figures" not in text


def test_headline_table_is_the_json(full_report) -> None:
    doc = json.loads((FIX / "analysis.json").read_text())
    table = headline_table(load_inputs([FIX / "analysis.json"]))
    for entry in doc["files"]:
        row = table.loc[entry["label"]]
        assert row["moLRP_FN"] == entry["lrp"]["moLRP_FN"]
        assert row["ap_loss"] == entry["losses"]["mean"]["ap_loss"]
        assert row["spearman"] == entry["ranking"]["pooled"]["spearman"]


def test_figures_without_data_are_skipped_with_a_reason(tmp_path: Path) -> None:
    report = build_report(load_inputs([FIX / "balance.json"]), tmp_path, dpi=30)
    written = [f.key for f in report.figures if f.files]
    assert written == ["balance"]
    reasons = {f.key: f.skipped for f in report.figures}
    assert reasons["training_curves"] == "no run directory among the inputs"
    assert reasons["score_vs_iou"] == "no analysis JSON among the inputs"
    text = report.index_md.read_text()
    assert "- Figure 6 (Training curves): no run directory among the inputs." in text
    one = build_report(load_inputs([FIX / "analysis_nocsv.json"]), tmp_path, dpi=30)
    reasons = {f.key: f.skipped for f in one.figures}
    assert reasons["comparison"] == "needs two or more models; the inputs hold 1"
    assert reasons["score_vs_iou"].startswith("no per-detection CSV")
    assert one.figures[1].files  # the decile summary from the JSON instead
    # The earlier run's balance figure is gone: the index only shows what exists.
    assert not (tmp_path / "figures" / "07_balance.png").exists()


def test_vector_only_report_links_without_embedding(tmp_path: Path) -> None:
    report = build_report(load_inputs([FIX / "balance.json"]), tmp_path, formats=("pdf",))
    page = report.index_html.read_text()
    parser = _Refs()
    parser.feed(page)
    assert parser.refs == ["figures/07_balance.pdf"]
    assert (tmp_path / "figures" / "07_balance.pdf").read_bytes().startswith(b"%PDF")
    assert "](figures/07_balance.pdf)" in report.index_md.read_text()


def test_csvs_without_true_positives(tmp_path: Path) -> None:
    path = _copy_analysis(tmp_path)
    for name in ("alrp", "focal"):
        csv_path = tmp_path / f"{name}.detections.csv"
        lines = csv_path.read_text().splitlines(keepends=True)
        csv_path.write_text("".join(line.replace(",tp", ",fp") for line in lines))
    inputs = load_inputs([path])
    assert all(m.tps is not None and m.tps.empty for m in inputs.models)
    out = tmp_path / "out"
    report = build_report(inputs, out, dpi=30)
    first, second = report.figures[0], report.figures[1]
    assert first.skipped == "the per-detection CSVs hold no true positive"
    assert second.files and "CSVs hold no true positive" in second.notes[0]
