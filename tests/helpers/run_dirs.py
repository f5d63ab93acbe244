"""Run directories as alrp train leaves them, built from the report fixtures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.helpers.paths import REPORT_FIXTURES


def make_run(
    root: Path, evals: dict[int, float | None], gt: str, predictions: Path | None = None
) -> Path:
    """A run folder like alrp train's: config, metrics, eval/epoch_XXX per {epoch: AP}."""
    run = root
    shutil.copytree(REPORT_FIXTURES / "run_alrp", run)
    for epoch, ap in evals.items():
        folder = run / "eval" / f"epoch_{epoch:03d}"
        folder.mkdir(parents=True)
        if predictions is None:
            (folder / "predictions.json").write_text("[]")
        else:
            shutil.copy(predictions, folder / "predictions.json")
        (folder / "summary.json").write_text(json.dumps({"epoch": epoch, "gt": gt, "AP": ap}))
    return run
