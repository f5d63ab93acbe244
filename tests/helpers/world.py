"""Valid inputs of every command (tiny COCO data, a checkpoint, predictions, an analysis
JSON, recorded loss inputs, a run directory), the CLI runner, and the checks that a refused
command says one line and leaves its inputs byte-for-byte unchanged. The ``world`` fixture
(tests/conftest.py) makes them once per session."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from typer.testing import CliRunner, Result

from alrp_cli.cli.app import app
from tests.helpers.tiny_training import make_tiny_coco, tiny_config

runner = CliRunner()


@dataclass
class World:
    """Valid inputs of every command."""

    root: Path
    data: Path
    train_ann: Path
    val_ann: Path
    val_images: Path
    image: Path
    checkpoint: Path
    predictions: Path
    analysis: Path
    loss_inputs: Path
    run: Path

    def run_files(self) -> list[Path]:
        """Every file the run directory owns, and its ``eval`` folder."""
        return [*sorted(p for p in self.run.rglob("*") if p.is_file()), self.run / "eval"]


def _predictions(val_ann: Path) -> list[dict]:
    """The ground truth boxes, slightly moved, as detections with decreasing scores."""
    gt = json.loads(val_ann.read_text())
    dets = []
    for k, a in enumerate(gt["annotations"]):
        x, y, w, h = a["bbox"]
        score = round(0.9 - 0.01 * k, 4)
        dets.append(
            {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": [x + 1, y, w, h],
             "score": score}
        )  # fmt: skip
    return dets


def make_world(root: Path) -> World:
    """Write every command's inputs under ``root`` (an empty folder)."""
    from alrp_cli.detection.build import build_model
    from alrp_cli.detection.checkpoint import save_checkpoint
    from alrp_cli.detection.data import CocoDataset, coco_layout

    data = make_tiny_coco(root / "coco")
    paths = coco_layout(data)
    assert paths.val_images is not None and paths.val_ann and paths.train_ann
    # no GroupNorm: at 64 px a single image has one value per group at the coarsest level
    cfg = tiny_config(data, root / "unused", group_norm=False).resolved()
    ds = CocoDataset(paths.val_images, paths.val_ann, train=False, image_size=64)
    model = build_model(cfg.model, ds.num_classes)
    meta = {"num_classes": ds.num_classes, "category_ids": ds.category_ids,
            "category_names": ds.category_names, "iters_per_epoch": 2}  # fmt: skip
    checkpoint = root / "ck.pt"
    save_checkpoint(
        checkpoint, {"config": cfg.to_dict(), "meta": meta, "model": model.state_dict()}
    )
    predictions = root / "pred.json"
    predictions.write_text(json.dumps(_predictions(paths.val_ann)))
    loss_inputs = root / "li.pt"
    g = torch.Generator().manual_seed(0)
    targets = (torch.rand(200, generator=g) < 0.1).to(torch.int8)
    batch = {"logits": torch.randn(200, generator=g), "targets": targets,
             "loc_errors": torch.rand(int(targets.sum()), generator=g)}  # fmt: skip
    torch.save({"version": 1, "batches": [batch], "meta": {"delta": 1.0}}, loss_inputs)
    analysis = root / "an.json"
    result = runner.invoke(
        app, ["analyze", str(predictions), "--gt", str(paths.val_ann), "--json", str(analysis)]
    )
    assert result.exit_code == 0, result.output
    return World(
        root=root,
        data=data,
        train_ann=paths.train_ann,
        val_ann=paths.val_ann,
        val_images=paths.val_images,
        image=sorted(paths.val_images.iterdir())[0],
        checkpoint=checkpoint,
        predictions=predictions,
        analysis=analysis,
        loss_inputs=loss_inputs,
        run=_run_dir(root / "run", checkpoint, loss_inputs, predictions, paths.val_ann),
    )


def _run_dir(run: Path, checkpoint: Path, loss_inputs: Path, predictions: Path, gt: Path) -> Path:
    """A run directory with every file ``alrp train`` writes; its checkpoints are small
    stand-ins (the output checks never read them; hashing 45 MB per case would be slow)."""
    evaluation = run / "eval" / "epoch_001"
    evaluation.mkdir(parents=True)
    config = torch.load(checkpoint, weights_only=True)["config"]
    (run / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (run / "metrics.jsonl").write_text('{"type": "epoch", "epoch": 1, "iter": 2}\n')
    for name in ("last.pt", "best.pt"):
        torch.save({"config": config, "stand-in": name}, run / name)
    shutil.copyfile(loss_inputs, run / "loss_inputs.pt")
    shutil.copyfile(predictions, evaluation / "predictions.json")
    (evaluation / "summary.json").write_text(json.dumps({"epoch": 1, "gt": str(gt), "AP": 0.5}))
    return run


def digest(*paths: Path) -> dict[str, str]:
    """sha256 of every file at or under ``paths`` (a folder's listing included)."""
    out: dict[str, str] = {}
    for p in paths:
        files = sorted(p.rglob("*")) if p.is_dir() else [p]
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest() if f.is_file() else "dir"
    return out


def invoke(args: list[str]) -> Result:
    """Run ``alrp ARGS`` through Typer's CliRunner."""
    return runner.invoke(app, [str(a) for a in args])


def assert_refused(result: Result, *names: object) -> str:
    """Exit 2, one ``Error:`` line on stderr naming every one of ``names``, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr  # no blank line
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return lines[0]
