"""`alrp predict`: COCO results that the analyze validator accepts; bad paths exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alrp_cli.cli.app import app
from alrp_cli.detection.data import coco_layout
from tests.helpers.tiny_training import make_tiny_coco, tiny_config

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(dataset, checkpoint) of a tiny one-epoch run, score threshold low enough to detect."""
    import torch

    from alrp_cli.detection.train import train

    root = tmp_path_factory.mktemp("cli-predict")
    data = make_tiny_coco(root / "coco")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(tiny_config(data, root / "run", epochs=1, score_threshold=0.001))
    finally:
        torch.set_num_threads(threads)
    return data, root / "run" / "last.pt"


def test_predict_with_annotations_passes_the_analyze_validator(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    from analysis import load_predictions

    data, ckpt = trained
    paths = coco_layout(data)
    out = tmp_path / "pred.json"
    args = ["predict", str(ckpt), "--images", str(paths.val_images), "--ann", str(paths.val_ann)]
    result = runner.invoke(
        app, [*args, "-o", str(out), "--device", "cpu", "--json", str(tmp_path / "s.json")]
    )
    assert result.exit_code == 0, result.output
    records = json.loads(out.read_text())
    assert records, "a trained checkpoint at threshold 0.001 detects something"
    preds = load_predictions(out, paths.val_ann)  # raises on any invalid record
    assert len(preds) == len(records)
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary == {"output": str(out), "images": 4, "detections": len(records)}
    # Without --ann the ids come from the file names (000001.png -> 1): the same results.
    bare = tmp_path / "bare.json"
    result = runner.invoke(
        app, ["predict", str(ckpt), "--images", str(paths.val_images), "-o", str(bare)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(bare.read_text()) == records


def test_bad_paths_and_non_images_exit_2(trained: tuple[Path, Path], tmp_path: Path) -> None:
    data, ckpt = trained
    images = coco_layout(data).val_images
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("not an image")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "000001.png").write_bytes(b"not a png")
    fake_ckpt = tmp_path / "fake.pt"
    fake_ckpt.write_text("nope")
    cases = [
        ([str(tmp_path / "none.pt"), "--images", str(images)], "no such checkpoint"),
        ([str(fake_ckpt), "--images", str(images)], "not a PyTorch file"),
        ([str(ckpt), "--images", str(tmp_path / "nodir")], "no such image folder or image file"),
        ([str(ckpt), "--images", str(junk)], "notes.txt: not an image file"),
        ([str(ckpt), "--images", str(broken)], "000001.png: not a readable image"),
        ([str(ckpt), "--images", str(images), "--ann", str(tmp_path / "no.json")], "no.json"),
    ]
    for args, message in cases:
        out = tmp_path / "out.json"
        result = runner.invoke(app, ["predict", *args, "-o", str(out)])
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.startswith("Error: ") and message in result.stderr, result.stderr
        assert "Traceback" not in result.output
        assert not out.exists()


def test_predict_takes_a_cuda_index_as_bench_does(
    trained: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--device cuda:1` on a machine with two GPUs (a fake one: CUDA is only asked how many
    devices it has; the model and the inference record where they were sent)."""
    import torch

    from alrp_cli.detection import predict as library

    data, ckpt = trained
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    sent: list[object] = []
    monkeypatch.setattr(torch.nn.Module, "to", lambda self, device: sent.append(device) or self)

    def inference(model, loader, category_ids, *, device, **options):  # type: ignore[no-untyped-def]
        sent.append(device)
        return []

    monkeypatch.setattr(library, "predict_loader", inference)
    args = ["predict", str(ckpt), "--images", str(coco_layout(data).val_images)]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "p.json"), "--device", "cuda:1"])
    assert result.exit_code == 0, result.output
    assert sent == [torch.device("cuda", 1)] * 2
    for command in (args, ["bench", "--size", "10x100"]):  # one resolver, one message
        result = runner.invoke(app, [*command, "--device", "cuda:2"])
        assert result.exit_code == 2
        assert "--device cuda:2: this machine has 2 CUDA devices" in result.stderr
