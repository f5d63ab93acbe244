"""The detector: shapes, anchors of the published configuration, prior bias, box coder."""

from __future__ import annotations

import math

import pytest
import torch

from alrp_cli.detection.anchors import STRIDES, anchor_sizes
from alrp_cli.detection.model import Detector
from alrp_cli.registry import DEFAULT_LOSS, default_anchors

pytestmark = pytest.mark.usefixtures("one_thread")


def test_anchor_sizes_follow_the_published_configuration() -> None:
    # 2 scales per octave for both assigners (ATSS cfg:33, max-IoU cfg:8); ratios 1 or 3.
    assert default_anchors(DEFAULT_LOSS, "atss") == (2, [1.0])
    assert default_anchors(DEFAULT_LOSS, "maxiou") == (2, [0.5, 1.0, 2.0])
    sizes = anchor_sizes(2)
    assert sizes[0] == pytest.approx((32.0, 32.0 * math.sqrt(2)))  # 4 × stride 8, 2 per octave
    assert sizes[-1] == pytest.approx((512.0, 512.0 * math.sqrt(2)))
    assert anchor_sizes(3)[1] == pytest.approx(tuple(64.0 * 2 ** (k / 3) for k in range(3)))


@pytest.mark.parametrize(("assigner", "per_location"), [("atss", 2), ("maxiou", 6)])
def test_outputs_cover_every_anchor_of_p3_to_p7(assigner: str, per_location: int) -> None:
    torch.manual_seed(0)
    model = Detector(3, backbone="resnet18", assigner=assigner, head_channels=32).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 96, 64))
    grids = [(math.ceil(96 / s), math.ceil(64 / s)) for s in STRIDES]
    expected = [h * w * per_location for h, w in grids]
    assert out.level_counts == expected
    total = sum(expected)
    assert out.cls.shape == (2, total, 3)
    assert out.reg.shape == (2, total, 4)
    assert out.anchors.shape == (total, 4)
    # The first P3 location is pixel (0, 0); its square base anchor has side 32.
    assert [-16.0, -16.0, 16.0, 16.0] in out.anchors[:per_location].tolist()
    # Second P3 location along x is one stride (8 px) to the right.
    assert out.anchors[per_location, 0] - out.anchors[0, 0] == 8.0
    # Prior-probability bias: every initial score is about 0.01.
    assert torch.sigmoid(out.cls).mean().item() == pytest.approx(0.01, rel=0.2)


def test_p6_comes_from_c5_by_default_and_from_p5_on_request() -> None:
    torch.manual_seed(0)
    c5 = Detector(2, backbone="resnet18", head_channels=32)
    p5 = Detector(2, backbone="resnet18", head_channels=32, p6_from="p5")
    extra_c5, extra_p5 = c5.backbone.fpn.extra_blocks, p5.backbone.fpn.extra_blocks
    assert extra_c5.p6.in_channels == 512 and extra_p5.p6.in_channels == 32  # C5 of ResNet-18
    # P7 = conv(P6) without a ReLU between (mmdetection's relu_before_extra_convs=False).
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        feats = list(c5.backbone(x).values())
        assert torch.allclose(feats[-1], extra_c5.p7(feats[-2]), atol=1e-6)


def test_decode_inverts_the_box_coder_with_the_published_stds() -> None:
    model = Detector(2, backbone="resnet18", head_channels=32)
    anchors = torch.tensor([[0.0, 0.0, 32.0, 32.0], [10.0, 20.0, 50.0, 40.0]])
    boxes = torch.tensor([[4.0, 2.0, 30.0, 40.0], [12.0, 18.0, 60.0, 44.0]])
    deltas = model.box_coder.encode_single(boxes, anchors)
    # stds (0.1, 0.1, 0.2, 0.2): dx = (cx_box − cx_anchor) / w_anchor / 0.1
    assert deltas[0, 0].item() == pytest.approx(((17.0 - 16.0) / 32.0) / 0.1)
    assert deltas[0, 2].item() == pytest.approx(math.log(26.0 / 32.0) / 0.2)
    assert torch.allclose(model.decode(deltas, anchors), boxes, atol=1e-4)


def test_bad_backbone_is_rejected() -> None:
    with pytest.raises(ValueError, match="resnet7"):
        Detector(2, backbone="resnet7")
