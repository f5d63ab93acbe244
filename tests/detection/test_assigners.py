"""Assigners on hand-built boxes and against plain-loop formulations written here."""

from __future__ import annotations

import math

import pytest
import torch

from alrp_cli.detection.assigners import IGNORED, NEGATIVE, assign, atss_assign, maxiou_assign


def _iou(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def test_maxiou_thresholds_on_hand_built_boxes() -> None:
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    anchors = torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0],  # IoU 1.0 -> positive
            [0.0, 0.0, 10.0, 6.0],  # IoU 0.6 -> positive
            [0.0, 0.0, 10.0, 4.5],  # IoU 0.45 -> ignored
            [0.0, 0.0, 10.0, 3.0],  # IoU 0.3 -> negative
            [20.0, 20.0, 30.0, 30.0],  # IoU 0 -> negative
        ]
    )
    assert maxiou_assign(anchors, gt).tolist() == [0, 0, IGNORED, NEGATIVE, NEGATIVE]


def test_maxiou_keeps_a_low_quality_best_match_and_picks_the_best_box() -> None:
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0]])
    anchors = torch.tensor(
        [
            [0.0, 0.0, 10.0, 9.0],  # IoU 0.9 with box 0
            [50.0, 50.0, 60.0, 53.0],  # IoU 0.3 with box 1: its best anchor, kept positive
            [50.0, 50.0, 60.0, 52.0],  # IoU 0.2 with box 1 -> negative
        ]
    )
    assert maxiou_assign(anchors, gt).tolist() == [0, 1, NEGATIVE]


def test_no_ground_truth_makes_every_anchor_negative() -> None:
    anchors = torch.rand(7, 2).repeat(1, 2) + torch.tensor([0.0, 0.0, 5.0, 5.0])
    empty = torch.zeros(0, 4)
    assert atss_assign(anchors, [7], empty).tolist() == [NEGATIVE] * 7
    assert maxiou_assign(anchors, empty).tolist() == [NEGATIVE] * 7


def _atss_loop(anchors: list, counts: list[int], gts: list, topk: int = 9) -> list[int]:
    """ATSS written as plain loops over boxes and anchors (independent of the module)."""
    centres = [((a[0] + a[2]) / 2, (a[1] + a[3]) / 2) for a in anchors]
    best = [(-1.0, NEGATIVE)] * len(anchors)
    for g, box in enumerate(gts):
        gc = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        cand = []
        start = 0
        for count in counts:
            level = list(range(start, start + count))
            level.sort(key=lambda i: math.dist(centres[i], gc))
            cand += level[: min(topk, count)]
            start += count
        ious = [_iou(anchors[i], box) for i in cand]
        mean = sum(ious) / len(ious)
        std = math.sqrt(sum((v - mean) ** 2 for v in ious) / (len(ious) - 1))
        for i, v in zip(cand, ious, strict=True):
            cx, cy = centres[i]
            inside = min(cx - box[0], cy - box[1], box[2] - cx, box[3] - cy) > 0.01
            if v >= mean + std and inside and v > best[i][0]:
                best[i] = (v, g)
    return [g for _, g in best]


def _grid_anchors(size: int, stride: int, scale: float) -> list[list[float]]:
    out = []
    for y in range(0, size, stride):
        for x in range(0, size, stride):
            h = scale / 2
            out.append([x - h, y - h, x + h, y + h])
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_atss_matches_a_plain_loop(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    levels = [_grid_anchors(64, 8, 32.0), _grid_anchors(64, 16, 64.0), _grid_anchors(64, 32, 128)]
    anchors = [a for level in levels for a in level]
    counts = [len(level) for level in levels]
    xy = torch.rand(5, 2, generator=g) * 40
    wh = torch.rand(5, 2, generator=g) * 30 + 4
    gts = torch.cat([xy, xy + wh], dim=1)
    got = atss_assign(torch.tensor(anchors), counts, gts)
    expected = _atss_loop(anchors, counts, gts.tolist())
    assert got.tolist() == expected
    assert (got >= 0).any()  # the case exercises positives


def test_atss_hand_built_box_equal_to_an_anchor() -> None:
    # One level, a 3x3 grid of 10x10 anchors at stride 10; the box equals the centre anchor.
    anchors = torch.tensor(
        [[x, y, x + 10.0, y + 10.0] for y in (0.0, 10.0, 20.0) for x in (0.0, 10.0, 20.0)]
    )
    gt = torch.tensor([[10.0, 10.0, 20.0, 20.0]])
    # All 9 anchors are candidates: IoUs are 1 (centre) and 0 (others); the threshold
    # mean + std = 1/9 + 1/3 ≈ 0.44 keeps only the centre anchor.
    got = atss_assign(anchors, [9], gt)
    assert got.tolist() == [NEGATIVE] * 4 + [0] + [NEGATIVE] * 4


def test_assign_rejects_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="'bogus'"):
        assign("bogus", torch.zeros(1, 4), [1], torch.zeros(0, 4))
