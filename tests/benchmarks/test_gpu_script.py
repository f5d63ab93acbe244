"""benchmarks/gpu.sh without a GPU: its syntax, and DRY=1 of the COCO step on a tiny COCO
folder: the subsets it writes and commands that `alrp train` accepts as they are."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from alrp_cli.cli.app import app
from tests.helpers.tiny_training import make_tiny_coco

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu.sh"


def test_the_script_parses() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_dry_run_of_the_coco_step(tmp_path: Path) -> None:
    coco = make_tiny_coco(tmp_path / "coco")
    env = {**os.environ, "DRY": "1", "COCO": str(coco), "OUT": str(tmp_path / "out"),
           "ITERS": "1", "VAL": "3", "NGPU": "4", "PYTHON": sys.executable,
           "BACKBONE_WEIGHTS": str(tmp_path / "r50.pth")}  # fmt: skip
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    commands = [shlex.split(line) for line in done.stdout.splitlines()]
    assert [c[c.index("--nproc") + 1] for c in commands] == ["1", "4"]
    for n, command in zip((1, 4), commands, strict=True):
        sub = tmp_path / "out" / f"coco-subset-{n}"
        train = json.loads((sub / "instances_train2017.json").read_text())
        assert len(train["images"]) == min(8 * n, 8)  # 8 images per GPU x ITERS; 8 exist
        assert {a["image_id"] for a in train["annotations"]} <= {i["id"] for i in train["images"]}
        assert len(json.loads((sub / "instances_val2017.json").read_text())["images"]) == 3
        assert command[:4] == [sys.executable, "-m", "alrp_cli", "train"]
        result = CliRunner().invoke(app, [*command[3:], "--print-config"])
        assert result.exit_code == 0, result.output
        cfg = json.loads(result.stdout)
        model, optim = cfg["model"], cfg["optim"]
        assert model["pretrained"] is True and model["backbone"] == "resnet50"  # COCO preset
        assert cfg["runtime"]["amp"] is True and optim["batch_size"] == 8 * n
        assert optim["epochs"] == 1 and model["backbone_weights"] == str(tmp_path / "r50.pth")
