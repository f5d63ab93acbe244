"""The official test scale end to end: keep-ratio resize within (833, 500), a padded batch of
images of different aspect ratios, and boxes mapped back to the original pixels exactly.

A detector stub finds coloured rectangles in its *input* batch (so it sees exactly what the
pipeline made of the images, padding included) and returns their boxes; through
``predict_loader`` / ``alrp predict`` and the COCO evaluation it must score AP 1.0.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn
from typer.testing import CliRunner

from alrp_cli.detection.data import MEAN, CocoDataset, collate
from alrp_cli.detection.data.official import rescale_size
from alrp_cli.detection.engine import evaluate, predict_loader
from alrp_cli.detection.model import HeadOutput

pytestmark = pytest.mark.usefixtures("one_thread")

COLOURS = ((230, 30, 30), (30, 200, 40), (40, 40, 230))  # category ids 1, 2, 3
# id -> (w, h, [(category, x, y, w, h)]): landscape, portrait, square and a large landscape
IMAGES = {
    1: (640, 480, [(1, 40, 50, 200, 150), (2, 300, 200, 180, 240)]),
    2: (300, 500, [(3, 20, 30, 150, 300), (1, 180, 360, 100, 120)]),
    3: (420, 420, [(2, 100, 100, 200, 120)]),
    4: (1000, 600, [(3, 600, 100, 300, 400), (1, 50, 50, 120, 90)]),
}


@pytest.fixture(scope="module")
def coloured(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eval-scale")
    (root / "img").mkdir()
    images, anns = [], []
    for image_id, (w, h, objects) in IMAGES.items():
        pixels = np.full((h, w, 3), 250, np.uint8)
        for cat, x, y, bw, bh in objects:
            pixels[y : y + bh, x : x + bw] = COLOURS[cat - 1]
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": cat,
                         "bbox": [x, y, bw, bh], "area": bw * bh, "iscrowd": 0})  # fmt: skip
        Image.fromarray(pixels).save(root / "img" / f"{image_id:06d}.png")
        images.append({"id": image_id, "file_name": f"{image_id:06d}.png", "width": w, "height": h})
    data = {"images": images, "annotations": anns,
            "categories": [{"id": i, "name": f"c{i}"} for i in (1, 2, 3)]}  # fmt: skip
    (root / "ann.json").write_text(json.dumps(data))
    return root


class FindColours(nn.Module):
    """Finds each colour's rectangle in each input image; one "anchor" per colour, whose
    regression output is the box itself. A second, weaker detection of class 0 covers the
    whole padded input: after clipping it must be the image itself."""

    def __init__(self) -> None:
        super().__init__()
        self.num_classes = len(COLOURS)

    def forward(self, images: Tensor) -> HeadOutput:
        b, _, h, w = images.shape
        n = len(COLOURS) + 1
        cls = torch.full((b, n, self.num_classes), -20.0)
        reg = torch.zeros(b, n, 4)
        for i, image in enumerate(images):
            for c, colour in enumerate(COLOURS):
                target = torch.tensor(colour, dtype=torch.float32).view(3, 1, 1) / 255
                others = [torch.tensor(MEAN).view(3, 1, 1), torch.full((3, 1, 1), 250 / 255)]
                d = ((image - target) ** 2).sum(0)
                near = d < torch.stack([((image - o) ** 2).sum(0) for o in others]).amin(0)
                ys, xs = torch.nonzero(near, as_tuple=True)
                if len(xs):
                    reg[i, c] = torch.tensor(
                        [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32
                    )
                    cls[i, c, c] = 10.0
            reg[i, -1] = torch.tensor([0.0, 0.0, w + 50.0, h + 50.0])
            cls[i, -1, 0] = -1.0  # score 0.27: after every true box, so AP stays 1
        return HeadOutput(cls=cls, reg=reg, anchors=torch.zeros(n, 4), level_counts=[n])

    def decode(self, deltas: Tensor, anchors: Tensor) -> Tensor:
        return deltas


def _check(results: list[dict], ann: Path) -> None:
    summary = evaluate(results, ann)
    assert summary["AP"] == pytest.approx(1.0) and summary["AP75"] == pytest.approx(1.0)
    whole = [r for r in results if r["score"] < 0.5]
    assert len(whole) == len(IMAGES)
    for r in whole:  # clipped to the image's own resized size, then mapped back
        w, h, _ = IMAGES[r["image_id"]]
        assert r["bbox"] == pytest.approx([0, 0, w, h], abs=1e-3)


def test_a_stub_that_finds_the_objects_scores_ap_1_through_a_padded_keep_ratio_batch(
    coloured: Path,
) -> None:
    ds = CocoDataset(
        coloured / "img", coloured / "ann.json", train=False, image_size=512,
        augmentation="official", test_scale=(833, 500),
    )  # fmt: skip
    for index, (w, h, _) in enumerate(IMAGES.values()):  # the official rescale rule
        image, target = ds[index]
        assert target["size"].tolist() == list(image.shape[-2:])
        factor = min(833 / max(w, h), 500 / min(w, h))
        size = (int(h * factor + 0.5), int(w * factor + 0.5))
        assert tuple(image.shape[-2:]) == size == rescale_size(h, w, (833, 500))
        assert max(size) <= 833 and min(size) <= 500
    assert rescale_size(480, 640, (833, 500)) == (500, 667)  # COCO's usual 640 x 480
    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=collate)
    images, _ = next(iter(loader))
    assert images.shape[-2] % 32 == 0 and images.shape[-1] % 32 == 0
    # the largest height (833, the portrait image) and width (833, the large landscape one)
    assert images.shape[-2:] == (864, 864)
    results = predict_loader(FindColours(), loader, [1, 2, 3], device=torch.device("cpu"))
    _check(results, coloured / "ann.json")


def test_alrp_predict_uses_the_checkpoints_test_scale(
    coloured: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alrp_cli.cli.app import app
    from alrp_cli.config.training import TrainConfig
    from alrp_cli.detection import predict as predict_module
    from alrp_cli.detection.checkpoint import save_checkpoint

    cfg = TrainConfig.from_options(data=coloured, backbone="resnet18").resolved()
    assert cfg.eval.test_scale == [833, 500] and cfg.data.augmentation == "official"
    meta = {"num_classes": 3, "category_ids": [1, 2, 3], "category_names": ["c1", "c2", "c3"]}
    checkpoint = tmp_path / "stub.pt"
    save_checkpoint(checkpoint, {"config": cfg.to_dict(), "meta": meta, "model": {}})
    monkeypatch.setattr(predict_module, "build_model", lambda *a, **k: FindColours())
    runner = CliRunner()
    for extra in (["--ann", coloured / "ann.json"], []):  # annotations, or file-name ids
        out = tmp_path / f"pred{len(extra)}.json"
        args = ["predict", checkpoint, "--images", coloured / "img", "-o", out, "--device", "cpu",
                "--batch-size", "3", *extra]  # fmt: skip
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.output
        _check(json.loads(out.read_text()), coloured / "ann.json")
