"""The one flattening of head outputs (IoUs of the positives included) and the one
reader/writer of ``loss_inputs.pt`` (an optional "ious" per batch)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor
from torchvision.ops import box_iou

from alrp_cli.balance import LossSpec, check_balance
from alrp_cli.balance.recorded import recorded_problems
from alrp_cli.errors import UserError
from alrp_cli.loss_inputs import aligned_iou, flatten_head_outputs
from alrp_cli.loss_inputs_file import Recorder, load_loss_inputs, save_loss_inputs


def _decode(deltas: Tensor, anchors: Tensor) -> Tensor:
    """A box coder stand-in: shift the anchor by the first two deltas (pixels)."""
    return anchors + deltas[:, [0, 1, 0, 1]]


def _case() -> tuple[Tensor, Tensor, Tensor, Tensor, list[dict[str, Tensor]]]:
    torch.manual_seed(0)
    cls = torch.randn(2, 3, 4, requires_grad=True)
    reg = (torch.randn(2, 3, 4) * 2).requires_grad_()
    anchors = torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30], [5, 5, 15, 15]])
    matched = torch.tensor([[1, -1, -2], [-1, 0, 0]])  # image 0: box 1 and an ignored anchor
    targets = [
        {
            "boxes": torch.tensor([[50.0, 50, 60, 60], [1, 1, 11, 12]]),
            "labels": torch.tensor([0, 3]),
        },
        {"boxes": torch.tensor([[21.0, 19, 31, 29]]), "labels": torch.tensor([2])},
    ]
    return cls, reg, anchors, matched, targets


def test_flattening_with_ious_and_shared_or_per_image_anchors() -> None:
    cls, reg, anchors, matched, targets = _case()
    shared = flatten_head_outputs(
        cls, reg, anchors, matched, targets, decode=_decode, ignore_value=-2, ious=True
    )
    per_image = flatten_head_outputs(
        cls, reg, anchors.expand(2, 3, 4), matched, targets, decode=_decode, ignore_value=-2
    )
    want = torch.zeros(2, 3, 4, dtype=torch.int8)
    want[0, 0, 3] = want[1, 1, 2] = want[1, 2, 2] = 1
    want[0, 2] = -1
    assert torch.equal(shared.targets, want.reshape(-1))
    assert shared.pos_image.tolist() == [0, 1, 1] and shared.pos_anchor.tolist() == [0, 1, 2]
    assert shared.labels.tolist() == [3, 2, 2]
    for name in ("targets", "boxes", "gt_boxes", "anchors", "loc_errors"):
        assert torch.equal(getattr(shared, name), getattr(per_image, name)), name
    assert per_image.ious is None and per_image.target_deltas is None
    # The IoU of each positive's decoded box with its own box, detached.
    assert shared.ious is not None and not shared.ious.requires_grad
    assert shared.loc_errors is not None and shared.loc_errors.requires_grad
    want_iou = box_iou(shared.boxes, shared.gt_boxes).diagonal()
    torch.testing.assert_close(shared.ious, want_iou.detach())
    assert 0 < float(shared.ious.max()) < 1  # overlapping, not equal, boxes
    # What focal loss reads: the anchors that are not ignored, all classes.
    valid = matched != -2
    assert torch.equal(shared.cls_logits, cls[valid])
    assert torch.equal(shared.onehot, want[valid].float())


def test_aligned_iou_of_disjoint_equal_and_empty_boxes() -> None:
    a = torch.tensor([[0.0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 2, 2], [1, 1, 1, 1]])
    b = torch.tensor([[3.0, 3, 4, 4], [0, 0, 2, 2], [1, 0, 3, 2], [1, 1, 1, 1]])
    assert aligned_iou(a, b).tolist() == [0.0, 1.0, pytest.approx(1 / 3), 0.0]


def _batch(seed: int, ious: bool) -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    targets = torch.tensor([1, 0, -1, 1, 0, 0])
    batch = {
        "logits": torch.randn(6, generator=gen),
        "targets": targets,
        "loc_errors": torch.rand(2, generator=gen),
    }
    if ious:
        batch["ious"] = torch.rand(2, generator=gen)
    return batch


def test_ious_round_trip_and_files_without_them_stay_readable(tmp_path: Path) -> None:
    path = tmp_path / "inputs.pt"
    save_loss_inputs(path, [_batch(0, ious=True), _batch(1, ious=False)], {"delta": 0.5})
    raw = torch.load(path, weights_only=True)
    assert raw["version"] == 1 and "ious" not in raw["batches"][1]
    rec = load_loss_inputs(path)
    assert torch.equal(rec.batches[0].ious, _batch(0, ious=True)["ious"])
    assert rec.batches[1].ious is None
    problems = list(recorded_problems(rec, (0.5,), dtype=torch.float64))
    assert problems[0].ious is not None and problems[0].ious.dtype == torch.float64
    assert problems[1].ious is None


@pytest.mark.parametrize(
    ("ious", "message"),
    [
        (torch.rand(3), "'ious' has 3 entries but there are 2 positives"),
        (torch.tensor([0.5, 1.5]), "'ious' holds values outside [0, 1]"),
        (torch.tensor([1, 0]), "'ious' has dtype torch.int64"),
        (torch.rand(2, 1), "'ious' has shape (2, 1)"),
    ],
)
def test_bad_ious_are_one_line_user_errors(tmp_path: Path, ious: Tensor, message: str) -> None:
    path = tmp_path / "bad.pt"
    torch.save({"version": 1, "batches": [{**_batch(0, False), "ious": ious}]}, path)
    with pytest.raises(UserError) as err:
        load_loss_inputs(path)
    assert str(err.value).startswith(f"{path}: batch 0: ") and message in str(err.value)


def test_recorder_keeps_detached_float32_copies_of_the_first_batches(tmp_path: Path) -> None:
    recorder = Recorder(2)
    logits = torch.randn(6, dtype=torch.float64, requires_grad=True)
    batch = _batch(0, ious=True)
    for _ in range(3):
        recorder.record(logits * 2, batch["targets"], batch["loc_errors"], batch["ious"])
    assert recorder.full and len(recorder.batches) == 2
    kept = recorder.batches[0]
    assert kept["logits"].dtype == torch.float32 and not kept["logits"].requires_grad
    torch.testing.assert_close(kept["logits"], (logits * 2).detach().float())
    with torch.no_grad():
        logits.add_(1.0)  # a copy, not a view of the training tensors
    torch.testing.assert_close(kept["logits"], ((logits - 1) * 2).detach().float())
    recorder.save(tmp_path / "r.pt", {"loss": "x"})
    assert load_loss_inputs(tmp_path / "r.pt").batches[1].ious is not None
    assert Recorder(0).full


def test_a_spec_that_takes_ious_gets_the_recorded_ones(tmp_path: Path) -> None:
    seen: list[Tensor | None] = []

    def with_ious(
        logits: Tensor, targets: Tensor, loc: Tensor, delta: float, ious: Tensor | None = None
    ) -> Tensor:
        seen.append(ious)
        return (logits * (targets == 1)).sum() * 0.0

    path = tmp_path / "inputs.pt"
    save_loss_inputs(path, [_batch(0, ious=True), _batch(1, ious=False)])
    problems = recorded_problems(load_loss_inputs(path), (1.0,), dtype=torch.float64)
    spec = LossSpec("with_ious", with_ious, checked=False, takes_ious=True)
    check_balance(problems, [spec], tolerance=1e-9)
    assert seen[0] is not None and torch.equal(seen[0], _batch(0, True)["ious"].double())
    assert seen[1] is None
