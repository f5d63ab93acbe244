"""A run directory of ``alrp train`` as an input: its evaluations and which one to analyse.

``alrp train --out RUN`` writes ``RUN/config.json``, ``RUN/metrics.jsonl`` and, at each
evaluation, ``RUN/eval/epoch_XXX/predictions.json`` and ``summary.json`` (with the
ground-truth path, ``"gt"``, and COCO ``"AP"``). ``alrp analyze RUN`` and ``alrp report
RUN`` analyse the best evaluation (highest AP; the earliest of equals, as ``best.pt``)
or the one of ``--epoch N``.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from alrp_cli.errors import UserError
from analysis.jsonio import read_json

PathLike = str | os.PathLike[str]
_EPOCH_DIR = re.compile(r"epoch_(\d+)")


@dataclass(frozen=True)
class RunEvaluation:
    """One evaluation of a run: its epoch, predictions file, ground truth and AP (or None)."""

    run: Path
    epoch: int
    predictions: Path
    summary: Path
    gt: str
    ap: float | None


def is_run_dir(path: PathLike) -> bool:
    """True for a folder holding ``metrics.jsonl`` and ``config.json`` (an ``alrp train`` run)."""
    p = Path(path)
    return p.is_dir() and (p / "metrics.jsonl").is_file() and (p / "config.json").is_file()


def run_evaluations(run: PathLike) -> list[RunEvaluation]:
    """The run's evaluations with a predictions file and a summary, by epoch.

    Raises UserError for a summary that is not a JSON object with a ``"gt"`` string.
    """
    run = Path(run)
    found = []
    folders = sorted((run / "eval").glob("epoch_*")) if (run / "eval").is_dir() else []
    for folder in folders:
        match = _EPOCH_DIR.fullmatch(folder.name)
        predictions, summary = folder / "predictions.json", folder / "summary.json"
        if not match or not predictions.is_file() or not summary.is_file():
            continue  # an evaluation cut short writes predictions first, summary last
        doc = read_json(summary, "evaluation summary")
        if not isinstance(doc, dict) or not isinstance(doc.get("gt"), str):
            raise UserError(f"{summary}: expected a JSON object with 'gt' (the ground-truth path)")
        ap = doc.get("AP")
        ap = float(ap) if isinstance(ap, int | float) and math.isfinite(ap) else None
        found.append(RunEvaluation(run, int(match.group(1)), predictions, summary, doc["gt"], ap))
    return sorted(found, key=lambda e: e.epoch)


def pick_evaluation(run: PathLike, epoch: int | None = None) -> RunEvaluation:
    """The run's evaluation of ``epoch``, or its best one (highest AP, earliest of equals).

    Raises UserError, one line naming the run, when the run has no evaluation or none of
    that epoch.
    """
    run = Path(run)
    evaluations = run_evaluations(run)
    if not evaluations:
        raise UserError(
            f"{run}: no evaluation yet (no eval/epoch_*/predictions.json with summary.json)"
        )
    if epoch is not None:
        for evaluation in evaluations:
            if evaluation.epoch == epoch:
                return evaluation
        done = ", ".join(str(e.epoch) for e in evaluations)
        raise UserError(f"{run}: no evaluation of epoch {epoch} (evaluated epochs: {done})")
    best = evaluations[0]
    for evaluation in evaluations[1:]:
        if evaluation.ap is not None and (best.ap is None or evaluation.ap > best.ap):
            best = evaluation
    return best


def evaluation_gt(evaluation: RunEvaluation) -> Path:
    """The ground-truth file of an evaluation, as recorded, or beside the run when moved.

    A relative path is taken from the current folder (where training ran, usually), else
    from the run's parent folder. Raises UserError when neither exists.
    """
    recorded = Path(evaluation.gt)
    candidates = (
        [recorded] if recorded.is_absolute() else [recorded, evaluation.run.parent / recorded]
    )
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise UserError(
        f"{evaluation.summary}: ground truth {evaluation.gt} not found (moved? give --gt)"
    )


def resolve_predictions(
    paths: list[Path], gt: Path | None, *, epoch: int | None = None
) -> tuple[list[Path], Path, list[str]]:
    """``alrp analyze`` inputs -> (predictions files, ground truth, default labels).

    A run directory stands for its best evaluation's ``predictions.json`` (or that of
    ``epoch``) and is named after its folder; a file is itself, named by its stem. Without
    ``gt``, every input must be a run and all must have been evaluated against the same
    ground truth. Raises UserError (one line) otherwise.
    """
    files, names, gts = [], [], []
    for path in paths:
        if path.is_dir():
            if not is_run_dir(path):
                raise UserError(
                    f"{path}: a folder but not a run directory (no metrics.jsonl or config.json)"
                )
            evaluation = pick_evaluation(path, epoch)
            files.append(evaluation.predictions)
            names.append(path.resolve().name)
            if gt is None:
                gts.append((path, evaluation_gt(evaluation)))
        else:
            if gt is None:
                raise UserError(f"{path}: a predictions file needs --gt (the ground truth)")
            files.append(path)
            names.append(path.stem)
    if epoch is not None and not any(p.is_dir() for p in paths):
        raise UserError(f"--epoch {epoch}: applies to run directories; none was given")
    if gt is None:
        gt = gts[0][1]
        other = [(run, g) for run, g in gts[1:] if not os.path.samefile(g, gt)]
        if other:
            run, g = other[0]
            raise UserError(
                f"{run}: evaluated against {g}, but {gts[0][0]} against {gt}; give --gt"
            )
    return files, gt, names
