"""`alrp train` on the COCO preset starts from ImageNet weights: from torch's cache, from
`--backbone-weights`, or not at all (exit 2 before any run directory); `--no-pretrained`
and the synthetic preset train from scratch. Never a network call (tests/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from alrp_cli.cli.app import app
from alrp_cli.detection.checkpoint import load_checkpoint
from alrp_cli.detection.data import coco_layout
from alrp_cli.detection.pretrained import imagenet_weights, weights_path
from tests.helpers.tiny_training import TINY_CLI_OPTIONS, make_tiny_coco
from tests.helpers.weights import imagenet_like

runner = CliRunner()


@pytest.fixture(scope="module")
def coco_args(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Options naming a tiny dataset file by file: the COCO preset (not a synthetic folder)."""
    paths = coco_layout(make_tiny_coco(tmp_path_factory.mktemp("cli-pretrained") / "coco"))
    return [
        "--train-ann", str(paths.train_ann), "--train-images", str(paths.train_images),
        "--val-ann", str(paths.val_ann), "--val-images", str(paths.val_images),
        *TINY_CLI_OPTIONS, "--epochs", "1", "--eval-every", "100",
    ]  # fmt: skip


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.chdir(tmp_path)  # a run without --out would appear under ./runs
    return tmp_path / "torch-home"


def _config(args: list[str]) -> dict:
    """The model group of the resolved configuration."""
    result = runner.invoke(app, ["train", *args, "--print-config"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["model"]


def test_print_config_shows_the_pretrained_default_per_preset(
    coco_args: list[str], tmp_path: Path
) -> None:
    coco = _config(coco_args)
    assert coco["pretrained"] is True and coco["backbone_weights"] is None
    assert _config([])["pretrained"] is False  # synthetic preset: from scratch
    assert _config([*coco_args, "--no-pretrained"])["pretrained"] is False
    local = _config(["--backbone-weights", str(tmp_path / "w.pth")])
    assert local["pretrained"] is True and local["backbone_weights"] == str(tmp_path / "w.pth")
    both = runner.invoke(app, ["train", "--no-pretrained", "--backbone-weights", "w.pth"])
    assert both.exit_code == 2 and "--backbone-weights" in both.stderr


def test_offline_without_cache_exits_2_before_any_run_directory(
    coco_args: list[str], torch_home: Path
) -> None:
    result = runner.invoke(app, ["train", *coco_args])
    assert result.exit_code == 2
    assert "downloading the ImageNet weights" in result.stderr  # as torch.hub says it
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("Error")]
    assert result.stderr.endswith(line + "\n")
    path = weights_path(imagenet_weights("resnet18"))
    assert line.startswith("Error: cannot download the ImageNet weights of resnet18 from ")
    assert str(path) in line and "--backbone-weights" in line
    assert not Path("runs").exists()
    assert not [f for f in torch_home.rglob("*") if f.is_file()]  # nothing half-downloaded
    out = Path("run")
    result = runner.invoke(app, ["train", *coco_args, "--out", str(out)])
    assert result.exit_code == 2 and not out.exists()


def _check_started_from(run: Path, state: dict[str, torch.Tensor]) -> None:
    """The stem and stage 1 and every BatchNorm statistic are the ImageNet ones after
    training (frozen, norm_eval); stage 4's BatchNorm scale trained."""
    model = load_checkpoint(run / "last.pt")["model"]
    for key in ("conv1.weight", "bn1.weight", "layer1.1.conv2.weight", "layer3.0.bn1.running_var"):
        assert torch.equal(model[f"backbone.body.{key}"], state[key]), key
    assert not torch.equal(model["backbone.body.layer4.1.bn2.weight"], state["layer4.1.bn2.weight"])


def test_cached_weights_start_the_run(coco_args: list[str], torch_home: Path) -> None:
    state = imagenet_like()
    path = weights_path(imagenet_weights("resnet18"))
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    result = runner.invoke(app, ["train", *coco_args, "--out", "run"])
    assert result.exit_code == 0, result.output
    assert json.loads(Path("run/config.json").read_text())["model"]["pretrained"] is True
    _check_started_from(Path("run"), state)


def test_a_wrong_backbone_weights_file_is_refused_before_any_run_directory(
    coco_args: list[str], torch_home: Path
) -> None:
    # (a right one: tests/detection/test_pretrained.py; this shows the CLI reads the file)
    torch.save(imagenet_like("resnet34"), "r34.pth")
    result = runner.invoke(
        app, ["train", *coco_args, "--backbone-weights", "r34.pth", "--out", "b"]
    )
    assert result.exit_code == 2 and not Path("b").exists()
    (line,) = result.stderr.strip().splitlines()
    assert "r34.pth (--backbone-weights): not torchvision's resnet18 weights" in line
    assert not torch_home.exists()  # the cache is not consulted
