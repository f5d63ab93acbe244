"""Inference post-processing on hand-built head outputs, and COCO results conversion."""

from __future__ import annotations

import math

import pytest
import torch

from alrp_cli.detection.model import Detector, HeadOutput
from alrp_cli.detection.postprocess import postprocess, to_coco_results

pytestmark = pytest.mark.usefixtures("one_thread")


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


@pytest.fixture(scope="module")
def model() -> Detector:
    return Detector(2, backbone="resnet18", head_channels=32)


def _out() -> HeadOutput:
    anchors = torch.tensor(
        [[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 9.0], [30.0, 30.0, 40.0, 40.0]]
    )
    cls = torch.full((1, 3, 2), _logit(0.01))
    cls[0, 0, 1] = _logit(0.9)
    cls[0, 1, 1] = _logit(0.8)  # IoU 0.9 with anchor 0, same class: suppressed
    cls[0, 1, 0] = _logit(0.7)  # other class: kept
    cls[0, 2, 0] = _logit(0.6)
    return HeadOutput(cls=cls, reg=torch.zeros(1, 3, 4), anchors=anchors, level_counts=[3])


def test_threshold_nms_and_max_detections(model: Detector) -> None:
    (det,) = postprocess(model, _out(), (64, 64))
    assert det["scores"].tolist() == pytest.approx([0.9, 0.7, 0.6])
    assert det["labels"].tolist() == [1, 0, 0]
    assert det["boxes"][0].tolist() == pytest.approx([0.0, 0.0, 10.0, 10.0])
    (det,) = postprocess(model, _out(), (64, 64), max_detections=2)
    assert det["scores"].tolist() == pytest.approx([0.9, 0.7])
    (det,) = postprocess(model, _out(), (64, 64), score_threshold=0.65)
    assert det["labels"].tolist() == [1, 0]
    (det,) = postprocess(model, _out(), (64, 64), pre_nms_topk=1)
    assert det["scores"].tolist() == pytest.approx([0.9])
    # Clipping: an image of 35 px cuts the third box to [30, 30, 35, 35].
    (det,) = postprocess(model, _out(), (35, 35))
    assert det["boxes"][2].tolist() == pytest.approx([30.0, 30.0, 35.0, 35.0])


def test_coco_results_are_in_original_coordinates() -> None:
    det = {
        "boxes": torch.tensor([[10.0, 20.0, 30.0, 60.0]]),
        "scores": torch.tensor([0.5]),
        "labels": torch.tensor([1]),
    }
    (rec,) = to_coco_results([det], [42], [torch.tensor([0.5, 2.0])], [7, 9])
    # x / sx, y / sy: (10, 20, 30, 60) / (0.5, 2) -> (20, 10, 60, 30) -> xywh (20, 10, 40, 20)
    assert rec == {"image_id": 42, "category_id": 9, "bbox": [20.0, 10.0, 40.0, 20.0], "score": 0.5}
