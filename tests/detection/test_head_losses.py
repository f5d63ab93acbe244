"""From head outputs and boxes to loss inputs: targets, order of positives, loc errors."""

from __future__ import annotations

import pytest
import torch

from alrp_cli.detection.head_losses import build_loss_inputs, compute_loss, make_loss_module
from alrp_cli.detection.model import Detector, HeadOutput
from tests.helpers.rs_batch import part_of, rich_case, rs_inputs

pytestmark = pytest.mark.usefixtures("one_thread")


def _giou(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    hull = (max(a[2], b[2]) - min(a[0], b[0])) * (max(a[3], b[3]) - min(a[1], b[1]))
    return inter / union - (hull - union) / hull


@pytest.fixture(scope="module")
def model() -> Detector:
    torch.manual_seed(0)
    return Detector(3, backbone="resnet18", head_channels=32)


def _case() -> tuple[HeadOutput, list[dict[str, torch.Tensor]]]:
    anchors = torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0],
            [20.0, 20.0, 30.0, 30.0],
            [20.0, 20.0, 30.0, 24.5],  # IoU 0.45 with image 0's box: ignored
            [40.0, 40.0, 50.0, 50.0],
        ]
    )
    torch.manual_seed(1)
    out = HeadOutput(
        cls=torch.randn(2, 4, 3),
        reg=torch.randn(2, 4, 4) * 0.1,
        anchors=anchors,
        level_counts=[4],
    )
    targets = [
        {"boxes": torch.tensor([[20.0, 20.0, 30.0, 30.0]]), "labels": torch.tensor([2])},
        {"boxes": torch.tensor([[41.0, 40.0, 50.0, 52.0]]), "labels": torch.tensor([0])},
    ]
    return out, targets


def test_targets_order_and_loc_errors(model: Detector) -> None:
    out, targets = _case()
    inputs = build_loss_inputs(model, out, targets, assigner="maxiou")
    assert torch.equal(inputs.logits, out.cls.reshape(-1))
    expected = torch.zeros(2, 4, 3, dtype=torch.int8)
    expected[0, 1, 2] = 1  # image 0, anchor 1, class 2
    expected[0, 2] = -1  # ignored anchor: every class
    expected[1, 3, 0] = 1
    assert torch.equal(inputs.targets, expected.reshape(-1))
    # loc errors in the order the positives appear: (image 0, anchor 1), (image 1, anchor 3)
    decoded = model.decode(out.reg[[0, 1], [1, 3]], out.anchors[[1, 3]])
    gts = [targets[0]["boxes"][0].tolist(), targets[1]["boxes"][0].tolist()]
    want = [1 - _giou(d, g) for d, g in zip(decoded.tolist(), gts, strict=True)]
    assert inputs.loc_errors.tolist() == pytest.approx(want, abs=1e-5)
    assert inputs.cls_logits.shape == (7, 3)  # 8 anchors minus the ignored one
    assert inputs.onehot.sum().item() == 2


def test_focal_and_alrp_losses_combine_the_parts(model: Detector) -> None:
    out, targets = _case()
    inputs = build_loss_inputs(model, out, targets, assigner="maxiou")
    parts = compute_loss("focal", inputs, None)
    p = torch.sigmoid(inputs.cls_logits)
    y = inputs.onehot
    pt = p * y + (1 - p) * (1 - y)
    alpha = 0.25 * y + 0.75 * (1 - y)
    focal = (-alpha * (1 - pt) ** 2 * torch.log(pt)).sum() / 2
    assert parts.cls == pytest.approx(focal.item(), rel=1e-5)
    assert parts.loc == pytest.approx(2.0 * inputs.loc_errors.sum().item() / 2, rel=1e-5)
    assert parts.sb_weight is None

    from alrp_cli.losses import alrp_loss

    module = make_loss_module("alrp", period=10)
    parts = compute_loss("alrp", inputs, module)
    ref = alrp_loss(inputs.logits, inputs.targets, inputs.loc_errors)
    assert parts.cls == pytest.approx(ref.cls.item())
    assert parts.loc == pytest.approx(ref.loc.item())
    assert parts.sb_weight == 50.0
    assert parts.total.item() == pytest.approx(ref.cls.item() + 50.0 * ref.loc.item(), rel=1e-5)


def test_unknown_loss_is_rejected() -> None:
    with pytest.raises(ValueError, match="'hinge'"):
        make_loss_module("hinge", period=1)


def test_ap_loss_adds_the_official_smooth_l1(model: Detector) -> None:
    # Official AP Loss: SmoothL1Loss(beta=1.0) with mmdetection's default mean over the
    # positives' 4 deltas (ap_loss_retinanet_r50_fpn_100e_coco500.py:13).
    from alrp_cli.losses import ap_loss

    out, targets = _case()
    inputs = build_loss_inputs(model, out, targets, assigner="maxiou")
    parts = compute_loss("ap", inputs, None)
    assert parts.cls == pytest.approx(ap_loss(inputs.logits, inputs.targets).item())
    diff = (inputs.deltas - inputs.target_deltas).abs()
    smooth = torch.where(diff < 1.0, 0.5 * diff**2, diff - 0.5)
    assert parts.loc == pytest.approx(smooth.sum().item() / (4 * inputs.num_pos), rel=1e-5)
    assert parts.sb_weight is None


def test_fixed_weight_never_self_balances(model: Detector) -> None:
    out, targets = _case()
    inputs = build_loss_inputs(model, out, targets, assigner="maxiou")
    balanced = make_loss_module("alrp", period=2)
    fixed = make_loss_module("alrp", period=2, init_weight=10.0, fixed=True)
    for _ in range(4):
        compute_loss("alrp", inputs, balanced)
        parts = compute_loss("alrp", inputs, fixed)
    assert parts.sb_weight == 10.0
    assert float(balanced.weight) != 50.0  # it did update after 2 steps


def test_ious_only_when_asked_and_the_recording_names_the_losss_delta(model: Detector) -> None:
    from alrp_cli.detection.recording import loss_inputs_meta

    out, targets = _case()
    assert build_loss_inputs(model, out, targets, assigner="maxiou").ious is None
    inputs = build_loss_inputs(model, out, targets, assigner="maxiou", ious=True)
    assert inputs.ious is not None and inputs.loc_errors is not None
    assert inputs.ious.shape == (inputs.num_pos,) and not inputs.ious.requires_grad
    assert bool((1.0 - inputs.loc_errors.detach() <= inputs.ious + 1e-6).all())  # GIoU ≤ IoU
    meta = {"num_classes": 3}
    assert loss_inputs_meta(meta, "alrp", "atss") == {
        **meta,
        "loss": "alrp",
        "assigner": "atss",
        "delta": 1.0,
    }
    assert "delta" not in loss_inputs_meta(meta, "focal", "maxiou")  # no ranking, no δ


def _iou(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_rank_and_sort_loss_is_the_rs_atss_head_written_out(model: Detector) -> None:
    # RankBasedATSSHead.loss (kemaloksuz/RankSortLoss, rank_based_atss_head.py:226-260),
    # written out from the definitions: IoU targets by hand, the loop port of RankSort, and
    # the box loss weighted by the positive anchor's highest class score.
    from alrp_cli.losses.reference_rs import rs_loss_reference

    out, targets = rich_case()
    inputs = build_loss_inputs(model, out, targets, assigner="maxiou", ious=True)
    assert inputs.num_pos >= 8
    parts = compute_loss("rs", inputs, None)
    parts.total.backward()

    img, anc = inputs.pos_image.tolist(), inputs.pos_anchor.tolist()
    decoded = model.decode(out.reg.detach()[img, anc], out.anchors[anc]).tolist()
    gts = inputs.gt_boxes.tolist()
    ious = [_iou(d, g) for d, g in zip(decoded, gts, strict=True)]
    assert len(set(ious)) == len(ious)  # distinct targets: the sorting part has work
    quality = inputs.targets.double()
    quality[inputs.targets == 1] = torch.tensor(ious, dtype=torch.float64)
    ref = rs_loss_reference(out.cls.detach().reshape(-1).double(), quality, delta=0.5)
    assert float(ref.sorting) > 0
    scores = [
        max(torch.sigmoid(out.cls.detach()[i, a]).tolist()) for i, a in zip(img, anc, strict=True)
    ]
    errors = [1 - _giou(d, g) for d, g in zip(decoded, gts, strict=True)]
    box = sum(w * e for w, e in zip(scores, errors, strict=True)) / sum(scores)
    cls = float(ref.ranking + ref.sorting)

    assert parts.cls == pytest.approx(cls, rel=1e-5)
    assert parts.loc == pytest.approx(box, rel=1e-5)
    assert parts.sb_weight == pytest.approx(cls / box, rel=1e-5)  # set each step
    assert parts.value == pytest.approx(2 * cls, rel=1e-5)
    assert parts.total.item() == pytest.approx(2 * cls, rel=1e-5)
    # The logits get the identity update; the boxes the weighted box loss's gradient.
    torch.testing.assert_close(
        out.cls.grad.reshape(-1).double(), ref.grad_logits, rtol=0, atol=1e-6
    )
    from torchvision.ops import generalized_box_iou

    reg = out.reg.detach().clone().requires_grad_()
    boxes = model.decode(reg[img, anc], out.anchors[anc])
    giou = generalized_box_iou(boxes, inputs.gt_boxes).diagonal()
    w = torch.tensor(scores)
    ((w * (1 - giou)).sum() / w.sum() * (cls / box)).backward()
    torch.testing.assert_close(out.reg.grad, reg.grad, rtol=1e-4, atol=1e-7)


def test_rank_and_sort_over_two_ranks_is_one_process_on_their_batches() -> None:
    from alrp_cli.losses.collective import run_ranks

    out, targets = rich_case(seed=1)
    whole = compute_loss("rs", rs_inputs(out, targets), None)
    whole.total.backward()

    def rank(collective):  # type: ignore[no-untyped-def]
        part = slice(2 * collective.rank, 2 * collective.rank + 2)
        mine = part_of(out, part)
        parts = compute_loss("rs", rs_inputs(mine, targets[part]), None, collective=collective)
        parts.total.backward()
        return parts, mine.cls.grad, mine.reg.grad

    ranks = run_ranks(2, rank)
    for parts, _, _ in ranks:  # every rank reports the one-process values
        for key in ("cls", "loc", "sb_weight", "value"):
            assert getattr(parts, key) == pytest.approx(getattr(whole, key), rel=1e-6), key
    for k, grad in ((1, out.cls.grad), (2, out.reg.grad)):
        torch.testing.assert_close(torch.cat([r[k] for r in ranks]), grad, rtol=1e-5, atol=1e-8)
