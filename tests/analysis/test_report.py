"""Loading report inputs and assembling the index pages, on the small fixtures of
tests/fixtures/report (made by make_fixtures.py in the fixed formats of the other commands)."""

from __future__ import annotations

import csv
import html
import json
import re
import shutil
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest
from matplotlib.image import imread

from alrp_cli import __version__
from alrp_cli.errors import UserError
from analysis.report import FIGURES, build_report, input_kind, load_inputs, parse_formats
from analysis.report.build import FigureResult, _figure_data, headline_table
from analysis.report.index import PX_PER_INCH
from tests.helpers.paths import REPO
from tests.helpers.run_dirs import make_run

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
    assert f"- run_focal (run): `{FIX / 'run_focal'}`\n  - loss: `focal`" in text
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


def _coco_run(root: Path, coco: Path, name: str, tmp_path: Path) -> Path:
    """A run whose epoch 1 evaluated half of cocoapi's fakebbox100 results, epoch 2 all."""
    gt = coco / "instances_val2014_100.json"
    half = tmp_path / "half.json"
    half.write_text(json.dumps(json.loads((coco / "detections_fakebbox100.json").read_text())[::2]))
    run = make_run(root / name, {1: 0.2}, str(gt), half)
    two = run / "eval" / "epoch_002"
    two.mkdir()
    shutil.copy(coco / "detections_fakebbox100.json", two / "predictions.json")
    (two / "summary.json").write_text(json.dumps({"epoch": 2, "gt": str(gt), "AP": 0.505}))
    return run


def test_a_run_directory_is_analysed_at_its_best_or_given_epoch(
    tmp_path: Path, shared_coco: Path
) -> None:
    a = _coco_run(tmp_path, shared_coco, "first", tmp_path)
    b = _coco_run(tmp_path, shared_coco, "second", tmp_path)
    inputs = load_inputs([a, b])
    assert [m.label for m in inputs.models] == [r.label for r in inputs.runs] == ["first", "second"]
    model = inputs.models[0]
    # cocoapi's own evaluation demo prints AP 0.505 for this pair (pycocotools' COCOeval).
    assert model.record["coco"]["AP"] == pytest.approx(0.505, abs=5e-4)
    assert len(model.tps) == model.record["ranking"]["pooled"]["n_tp"] > 0
    assert model.evaluation == "eval/epoch_002 (best AP; AP 0.505)"
    assert inputs.warnings == []  # same ground truth, both runs evaluated
    report = build_report(inputs, tmp_path / "out", dpi=30)
    assert [f.key for f in report.figures if f.skipped] == ["balance"]  # 1-6 and 8 drawn
    text = report.index_md.read_text()
    assert f"  - ground truth: `{shared_coco / 'instances_val2014_100.json'}`" in text
    assert f"  - detections: `{a / 'eval' / 'epoch_002' / 'predictions.json'}`" in text
    assert "  - IoU threshold: `0.5`" in text
    first = load_inputs([a], epoch=1).models[0]
    assert first.evaluation == "eval/epoch_001 (epoch 1; AP 0.200)"
    assert first.record["n_detections"] == 367
    assert first.record["coco"]["AP"] < model.record["coco"]["AP"]
    with pytest.raises(
        UserError, match=r"first: no evaluation of epoch 3 \(evaluated epochs: 1, 2\)"
    ):
        load_inputs([a], epoch=3)
    with pytest.raises(UserError, match="--epoch 1: applies to run directories"):
        load_inputs([FIX / "balance.json"], epoch=1)


def test_a_run_without_evaluation_draws_its_curves_with_a_warning() -> None:
    inputs = load_inputs([FIX / "run_alrp"])
    assert inputs.models == [] and len(inputs.runs) == 1
    assert inputs.warnings == [
        f"run_alrp: no evaluation in {FIX / 'run_alrp' / 'eval'}; only its training curves "
        "are drawn"
    ]


def test_different_ground_truths_are_warned_about(tmp_path: Path) -> None:
    doc = json.loads((FIX / "analysis_nocsv.json").read_text())
    doc["gt"] = "elsewhere/instances.json"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(doc))
    same = load_inputs([FIX / "analysis_nocsv.json", FIX / "analysis_nocsv.json"])
    assert same.warnings == []
    inputs = load_inputs([FIX / "analysis_nocsv.json", other])
    assert len(inputs.warnings) == 1
    warning = inputs.warnings[0]
    assert (
        "different ground truths" in warning and "retina (2): elsewhere/instances.json" in warning
    )
    report = build_report(inputs, tmp_path / "out", dpi=30)
    assert f"- {warning}" in report.index_md.read_text()
    assert html.escape(warning) in report.index_html.read_text()


def test_manifest_tables_hold_numbers_and_the_index_says_when_and_how(full_report) -> None:
    manifest = full_report.to_json()
    models = manifest["tables"][0]
    doc = json.loads((FIX / "analysis.json").read_text())
    row = models["rows"][0]
    assert row[0] == "alrp" and row[1] == doc["files"][0]["coco"]["AP"]  # full precision
    assert row[models["columns"].index("TPs")] == doc["files"][0]["ranking"]["pooled"]["n_tp"]
    assert isinstance(row[models["columns"].index("TPs")], int)
    runs = manifest["tables"][2]
    assert all(r[2] is None or isinstance(r[2], int) for r in runs["rows"])
    json.dumps(manifest, allow_nan=False)  # NaN became null
    assert manifest["made"]["alrp"] == __version__
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", manifest["made"]["date"])
    kinds = [(s["kind"], s["label"]) for s in manifest["inputs"]]
    assert ("analysis", "alrp") in kinds and ("check-balance", "balance") in kinds
    alrp = next(s for s in manifest["inputs"] if s["label"] == "alrp")
    assert alrp["ground truth"] == doc["gt"] and alrp["IoU threshold"] == "0.5"
    assert alrp["detections"] == doc["files"][0]["path"]
    text = full_report.index_md.read_text()
    assert f"with alrp {__version__}." in text and f"`{doc['gt']}`" in text


def test_the_index_date_is_the_given_time(tmp_path: Path) -> None:
    when = datetime(2026, 1, 2, 3, 4, tzinfo=timezone.utc)
    report = build_report(load_inputs([FIX / "balance.json"]), tmp_path, dpi=30, now=when)
    assert f"Made on 2026-01-02 03:04 UTC with alrp {__version__}." in report.index_md.read_text()


def test_undefined_numbers_show_as_a_dash(tmp_path: Path) -> None:
    doc = json.loads((FIX / "analysis_nocsv.json").read_text())
    doc["files"][0]["coco"]["AP50"] = None  # COCOeval's -1: undefined
    doc["files"][0]["lrp"]["moLRP_loc"] = None
    path = tmp_path / "a.json"
    path.write_text(json.dumps(doc))
    report = build_report(load_inputs([path]), tmp_path / "out", formats=("svg",), dpi=30)
    models = report.tables[0]
    cells = dict(zip(models.columns, models.rows[0], strict=True))
    assert cells["AP50"] == "–" and cells["oLRP loc"] == "–" and cells["AP"] != "–"
    assert report.to_json()["tables"][0]["rows"][0][2] is None
    pr = next(f for f in report.figures if f.key == "pr_curve")
    assert "retina (AP50 –)" in pr.files["svg"].read_text()


def test_html_tables_scroll_and_figures_show_at_body_text_size(full_report) -> None:
    page = full_report.index_html.read_text()
    assert page.count('<div class="scroll"><table>') == len(full_report.tables) == 3
    for fig in full_report.figures:
        width, height = (round(v * PX_PER_INCH) for v in fig.size)
        assert f'width="{width}" height="{height}"' in page, fig.key
    curves = next(f for f in full_report.figures if f.key == "training_curves")
    assert set(curves.narrow) == {"png"} and curves.narrow_size[0] < curves.size[0]
    assert '<source media="(max-width: 600px)"' in page


def test_pdfs_embed_truetype_fonts_not_type3(tmp_path: Path) -> None:
    report = build_report(load_inputs([FIX / "balance.json"]), tmp_path, formats=("pdf",))
    pdf = (tmp_path / "figures" / "07_balance.pdf").read_bytes()
    assert report.figures[6].files["pdf"].is_file()
    # Type 42: a Type0 font over a CIDFontType2 (TrueType outlines), never Type 3.
    assert b"/Subtype /CIDFontType2" in pdf and b"/FontFile2" in pdf
    assert b"/Type3" not in pdf


def test_in_figure_titles_match_the_index_titles(tmp_path: Path) -> None:
    inputs = load_inputs(ALL)
    for number, (key, title, caption) in enumerate(FIGURES, start=1):
        result = FigureResult(number, key, title, caption)
        fig = _figure_data(inputs, result)()
        shown = fig._suptitle.get_text() if fig._suptitle else fig.axes[0].get_title()
        assert shown == result.title, key


def test_inputs_from_before_rank_and_sort_still_report(full_report, tmp_path: Path) -> None:
    # The fixtures predate Rank & Sort Loss: no RS loss values in the analysis JSON, no
    # parts or rules in the check-balance JSON. The report is still whole.
    doc = json.loads((FIX / "analysis.json").read_text())
    assert "rs" not in doc["files"][0]["losses"]["mean"]
    assert "part" not in json.loads((FIX / "balance.json").read_text())["losses"][0]
    assert not [f for f in full_report.figures if f.skipped and f.name != "training"]
    models = full_report.tables[0]
    rs = models.columns.index("RS loss")
    assert {row[rs] for row in models.rows} == {"–"}
    # The same analysis with Rank & Sort values shows them.
    for entry in doc["files"]:
        entry["losses"]["mean"].update(rs_ranking=0.4, rs_sorting=0.1, rs=0.5)
    newer = tmp_path / "analysis.json"
    newer.write_text(json.dumps(doc))
    table = headline_table(load_inputs([newer]))
    assert set(table["rs"]) == {0.5}
    report = build_report(load_inputs([newer]), tmp_path / "out", formats=("png",), dpi=30)
    assert {row[rs] for row in report.tables[0].rows} == {"0.500"}
