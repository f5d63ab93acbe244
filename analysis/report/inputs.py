"""Load the inputs of a report: run directories, analysis JSONs (+ CSVs), check-balance JSONs.

The kind of an input is read from its shape: a directory with ``metrics.jsonl`` and
``config.json`` is a training run; a JSON object with ``files`` is an ``alrp analyze``
result; one with ``trials`` and ``losses`` is an ``alrp check-balance`` result. Anything
else, or a file that does not parse, raises :class:`~alrp_cli.errors.UserError` naming the
file and the problem.

A run that has evaluated is also a model: its best evaluation (or that of ``epoch``) is
analysed against the ground truth its ``summary.json`` names, as ``alrp analyze RUN``
would, so one command goes from a run to every figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alrp_cli.errors import UserError
from analysis.jsonio import read_json
from analysis.jsonl import read_jsonl
from analysis.rundir import evaluation_gt, pick_evaluation, run_evaluations

#: Columns of the per-detection CSV the figures read.
DETECTION_COLUMNS = ["category", "score", "iou", "status"]
#: Blocks every entry of an analysis JSON's "files" must have.
MODEL_BLOCKS = ["coco", "lrp", "ranking", "pr_curve"]


@dataclass
class ModelAnalysis:
    """One model (one entry of an analysis JSON's ``files``) and its true positives.

    ``tps`` has columns ``category``, ``score``, ``iou`` (one row per true positive) or is
    None when the per-detection CSV is absent; ``tps_note`` then says why.
    """

    label: str
    source: Path
    record: dict[str, Any]
    iou_threshold: float
    tps: pd.DataFrame | None = None
    tps_note: str | None = None
    #: The ground truth the model was analysed against, as recorded (None: not recorded).
    gt: str | None = None
    #: For a run: which evaluation was analysed, e.g. "eval/epoch_012 (best AP 0.441)".
    evaluation: str | None = None


@dataclass
class BalanceCheck:
    """One check-balance JSON: ``losses`` (one row per loss) and ``trials`` (one per trial)."""

    label: str
    source: Path
    losses: pd.DataFrame
    trials: pd.DataFrame


@dataclass
class TrainingRun:
    """One run directory: its config and its metrics.jsonl records as a frame."""

    label: str
    source: Path
    config: dict[str, Any]
    metrics: pd.DataFrame

    @property
    def loss(self) -> str:
        """The run's loss (``model.loss`` of its config.json), '–' when it does not say."""
        model = self.config.get("model")
        return str(model.get("loss", "–")) if isinstance(model, dict) else "–"


@dataclass
class ReportInputs:
    """Everything a report draws from, with labels made unique."""

    models: list[ModelAnalysis] = field(default_factory=list)
    balances: list[BalanceCheck] = field(default_factory=list)
    runs: list[TrainingRun] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def input_kind(path: Path) -> tuple[str, Any]:
    """``("run", None)``, ``("analysis", doc)`` or ``("balance", doc)`` for ``path``.

    Raises UserError for a missing path, a directory that is not a run, a file that is not
    JSON, or JSON of another kind.
    """
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    if path.is_dir():
        missing = [n for n in ("metrics.jsonl", "config.json") if not (path / n).is_file()]
        if missing:
            raise UserError(f"{path}: not a run directory (no {' or '.join(missing)})")
        return "run", None
    doc = read_json(path, "analysis or check-balance")
    if isinstance(doc, dict) and "files" in doc:
        return "analysis", doc
    if isinstance(doc, dict) and "trials" in doc and "losses" in doc:
        return "balance", doc
    raise UserError(
        f"{path}: not an analysis JSON (no 'files'), a check-balance JSON (no 'trials' and "
        "'losses') or a run directory"
    )


def load_inputs(
    paths: list[Path], labels: list[str] | None = None, *, epoch: int | None = None
) -> ReportInputs:
    """Read every input; ``labels`` (one per input, or None) override the default names.

    Default labels: a run's folder name, a check-balance file's stem, and for an analysis
    JSON the labels of its models. An empty label keeps the default. An override label
    replaces the model label of a one-model analysis and prefixes (``label/model``) those
    of a several-model one. A run with evaluations adds a model of the same label: its
    best evaluation, or that of ``epoch`` (then every run must have one).
    """
    if labels and len(labels) != len(paths):
        raise UserError(f"labels: {len(labels)} given for {len(paths)} inputs; give one per input")
    inputs = ReportInputs()
    for k, raw in enumerate(paths):
        path = Path(raw)
        override = labels[k] if labels and labels[k] else None  # "" keeps the default
        kind, doc = input_kind(path)
        if kind == "run":
            run = _load_run(path, override or path.resolve().name)
            inputs.runs.append(run)
            model = _analyse_run(run, epoch, inputs.warnings)
            if model is not None:
                inputs.models.append(model)
        elif kind == "balance":
            inputs.balances.append(_load_balance(path, doc, override or path.stem))
        else:
            inputs.models.extend(_load_analysis(path, doc, override, inputs.warnings))
    if epoch is not None and not inputs.runs:
        raise UserError(f"--epoch {epoch}: applies to run directories; none was given")
    _make_unique(inputs.models)
    _make_unique(inputs.runs)
    _make_unique(inputs.balances)
    _warn_different_gts(inputs)
    return inputs


def _warn_different_gts(inputs: ReportInputs) -> None:
    """A warning when the models were analysed against different ground-truth files."""
    groups: dict[str, list[str]] = {}
    for model in inputs.models:
        if model.gt is not None:
            groups.setdefault(_same_file_key(model.gt), []).append(model.label)
    if len(groups) > 1:
        parts = "; ".join(f"{', '.join(labels)}: {gt}" for gt, labels in groups.items())
        inputs.warnings.append(
            f"the models were analysed against different ground truths ({parts}); "
            "their numbers are not comparable"
        )


def _same_file_key(path: str) -> str:
    """One key per file: the resolved path when it exists, else the path as written."""
    p = Path(path)
    return str(p.resolve()) if p.exists() else path


def _analyse_run(run: TrainingRun, epoch: int | None, warnings: list[str]) -> ModelAnalysis | None:
    """The model of a run: its best (or ``epoch``'s) evaluation analysed, or None if none."""
    if epoch is None and not run_evaluations(run.source):
        warnings.append(
            f"{run.label}: no evaluation in {run.source / 'eval'}; only its training curves "
            "are drawn"
        )
        return None
    # Imported here: the analysis pipeline is only needed for runs.
    from analysis.pipeline import analyze
    from analysis.tables import detections_table

    evaluation = pick_evaluation(run.source, epoch)
    gt = evaluation_gt(evaluation)
    result = analyze(evaluation.predictions, gt, label=run.label)
    folder = evaluation.predictions.parent.relative_to(run.source).as_posix()
    ap = "–" if evaluation.ap is None else f"{evaluation.ap:.3f}"
    which = f"epoch {evaluation.epoch}" if epoch is not None else "best AP"
    return ModelAnalysis(
        label=run.label,
        source=run.source,
        record=result.to_dict(),
        iou_threshold=0.5,
        tps=_true_positives(detections_table(result), str(evaluation.predictions)),
        gt=str(gt),
        evaluation=f"{folder} ({which}; AP {ap})",
    )


def _make_unique(items: list[Any]) -> None:
    seen: dict[str, int] = {}
    for item in items:
        base = item.label
        seen[base] = seen.get(base, 0) + 1
        if seen[base] > 1:
            item.label = f"{base} ({seen[base]})"


def _number(value: Any, where: str) -> float:
    """A float from a JSON number or null (NaN); anything else is the user's error."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UserError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _load_analysis(
    path: Path, doc: dict[str, Any], override: str | None, warnings: list[str]
) -> list[ModelAnalysis]:
    files = doc["files"]
    if not isinstance(files, list) or not files:
        raise UserError(f"{path}: 'files' must be a non-empty list of analysed models")
    iou = _number(doc.get("iou_threshold", 0.5), f"{path}: iou_threshold")
    models = []
    for k, entry in enumerate(files):
        where = f"{path}: files[{k}]"
        if not isinstance(entry, dict):
            raise UserError(f"{where}: expected an object")
        missing = [b for b in MODEL_BLOCKS if not isinstance(entry.get(b), dict)]
        if not isinstance(entry.get("label"), str):
            missing.insert(0, "label")
        if missing:
            raise UserError(f"{where}: missing {', '.join(repr(m) for m in missing)}")
        _check_model(entry, where)
        label = str(entry["label"])
        if override is not None:
            label = override if len(files) == 1 else f"{override}/{label}"
        gt = doc.get("gt") if isinstance(doc.get("gt"), str) else None
        model = ModelAnalysis(label=label, source=path, record=entry, iou_threshold=iou, gt=gt)
        csv_ref = (entry.get("csv") or {}).get("detections")
        if not csv_ref:
            model.tps_note = "the analysis JSON names no per-detection CSV"
        else:
            csv_path = Path(csv_ref)
            if not csv_path.is_absolute() and (path.parent / csv_path).is_file():
                csv_path = path.parent / csv_path
            elif not csv_path.is_absolute() and not csv_path.is_file():
                csv_path = path.parent / csv_path  # named in the warning below
            if csv_path.is_file():
                model.tps = _load_tps(csv_path)
            else:
                model.tps_note = f"per-detection CSV {csv_path} not found"
                warnings.append(f"{label}: {model.tps_note}")
        models.append(model)
    return models


def _check_model(entry: dict[str, Any], where: str) -> None:
    """The parts of a model record the figures read have the fixed format's shape."""
    pr = entry["pr_curve"]
    recall, precision = pr.get("recall"), pr.get("precision")
    if not isinstance(recall, list) or not isinstance(precision, list):
        raise UserError(f"{where}: pr_curve needs 'recall' and 'precision' lists")
    if len(recall) != len(precision):
        raise UserError(f"{where}: pr_curve: {len(recall)} recall but {len(precision)} precision")
    for k, value in enumerate(recall + precision):
        _number(value, f"{where}: pr_curve value {k}")
    for key in ("per_class", "iou_by_score_decile"):
        rows = entry["ranking"].get(key, [])
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise UserError(f"{where}: ranking.{key} must be a list of objects")


def _load_tps(path: Path) -> pd.DataFrame:
    """The true positives of a per-detection CSV: columns category, score, iou."""
    try:
        frame = pd.read_csv(path, usecols=lambda c: c in DETECTION_COLUMNS)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not a readable CSV ({str(err).strip()})") from None
    missing = [c for c in DETECTION_COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)}")
    return _true_positives(frame, str(path))


def _true_positives(frame: pd.DataFrame, path: str) -> pd.DataFrame:
    """Rows of a per-detection table with status tp: columns category, score, iou."""
    tps = frame[frame["status"] == "tp"]
    values = tps[["score", "iou"]].apply(pd.to_numeric, errors="coerce")
    # IoUs of identical boxes come out a few ulps above 1; scores need not lie in [0, 1].
    iou_ok = values["iou"].between(0.0, 1.0 + 1e-6)
    bad = ~(iou_ok & np.isfinite(values["score"]))
    if bad.any():
        line = int(bad.to_numpy().nonzero()[0][0])
        row = tps.index[line] + 2  # header is line 1
        raise UserError(
            f"{path}: line {row}: a true positive needs a finite score and iou in [0, 1]"
        )
    values["iou"] = values["iou"].clip(upper=1.0)
    return pd.DataFrame(
        {"category": tps["category"].astype(str).to_numpy(), **values.reset_index(drop=True)}
    )


def _load_balance(path: Path, doc: dict[str, Any], label: str) -> BalanceCheck:
    losses, trials = doc["losses"], doc["trials"]
    if not isinstance(losses, list) or not all(isinstance(x, dict) for x in losses):
        raise UserError(f"{path}: 'losses' must be a list of objects")
    if not isinstance(trials, list) or not all(isinstance(x, dict) for x in trials):
        raise UserError(f"{path}: 'trials' must be a list of objects")
    for k, trial in enumerate(trials):
        if not isinstance(trial.get("loss"), str):
            raise UserError(f"{path}: trials[{k}]: missing 'loss'")
        for key in ("sum_pos", "sum_neg"):
            if key not in trial:
                raise UserError(f"{path}: trials[{k}]: missing '{key}'")
            trial[key] = _number(trial[key], f"{path}: trials[{k}].{key}")
    return BalanceCheck(
        label=label,
        source=path,
        losses=pd.DataFrame(losses),
        trials=pd.DataFrame(trials, columns=None if trials else ["loss", "sum_pos", "sum_neg"]),
    )


def _load_run(path: Path, label: str) -> TrainingRun:
    config = read_json(path / "config.json", "run config")
    if not isinstance(config, dict):
        raise UserError(f"{path / 'config.json'}: expected a JSON object")
    metrics_path = path / "metrics.jsonl"
    # A run still training may have a torn last line; read_jsonl drops it.
    records = read_jsonl(metrics_path)
    for n, record in enumerate(records, start=1):
        if "type" not in record or "iter" not in record:
            raise UserError(f"{metrics_path}: record {n}: expected 'type' and 'iter'")
    metrics = pd.DataFrame(records, columns=None if records else ["type", "iter"])
    for column in metrics.columns:
        if column != "type":
            converted = pd.to_numeric(metrics[column], errors="coerce")
            if converted.notna().sum() >= metrics[column].notna().sum():
                metrics[column] = converted
    return TrainingRun(label=label, source=path, config=config, metrics=metrics)
