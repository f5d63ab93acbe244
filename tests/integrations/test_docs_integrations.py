"""The Python examples of docs/integrations.md run, and the porting snippets compute aLRP Loss.

Each porting snippet gets random tensors in its library's conventions; the oracle is
``alrp_loss`` on logits, targets and e = 1 − GIoU built by hand, one element at a time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor
from torchvision.ops import generalized_box_iou
from typer.testing import CliRunner

from alrp_cli.cli.app import app
from alrp_cli.losses import ALRPLoss, alrp_loss
from tests.helpers.paths import REPO

B, C = 2, 3


def _blocks() -> list[str]:
    text = (REPO / "docs" / "integrations.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def _snippets() -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    for code in _blocks():
        if "def alrp_loss" in code or "def alrp_losses" in code:
            exec(compile(code, "docs/integrations.md", "exec"), namespace)
    return namespace


def _boxes(n: int, gen: torch.Generator) -> Tensor:
    xy = torch.rand(n, 2, generator=gen) * 40
    return torch.cat([xy, xy + 5 + torch.rand(n, 2, generator=gen) * 20], dim=1)


def _e(pred: Tensor, gt: Tensor) -> Tensor:
    return 1.0 - generalized_box_iou(pred[None], gt[None])[0, 0]


def _expect(
    logits: list[Tensor], targets: list[int], errors: list[Tensor], leaves: list[Tensor]
) -> list[Tensor]:
    """L_cls, w · L_loc (w = 50, the first weight) and the gradients of their sum."""
    out = alrp_loss(torch.stack(logits), torch.tensor(targets), torch.stack(errors))
    grads = torch.autograd.grad(out.cls + 50.0 * out.loc, leaves)
    return [out.cls, 50.0 * out.loc, *grads]


def _check(cls: Tensor, loc: Tensor, leaves: list[Tensor], want: list[Tensor]) -> None:
    grads = torch.autograd.grad(cls + loc, leaves)
    assert len(want) == 2 + len(leaves)
    for got, expected in zip((cls, loc, *grads), want, strict=True):
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def test_mmdetection_snippet() -> None:
    fn = _snippets()["alrp_loss_mmdet"]
    gen = torch.Generator().manual_seed(0)
    a, sizes = 2, [(4, 4), (2, 2)]
    scores = [torch.randn(B, a * C, h, w, generator=gen) for h, w in sizes]
    leaves = [s.clone().requires_grad_() for s in scores]
    total = a * sum(h * w for h, w in sizes)
    labels = torch.randint(0, C + 4, (B, total), generator=gen).clamp(max=C)  # C: background
    weights = torch.ones(B, total)
    weights[(labels == C) & (torch.rand(B, total, generator=gen) < 0.2)] = 0  # ignored
    pos = labels < C
    pred, gt = _boxes(int(pos.sum()), gen), _boxes(int(pos.sum()), gen)

    logits, targets, errors = [], [], []
    for b in range(B):
        offset = 0
        for leaf, (h, w) in zip(leaves, sizes, strict=True):
            for y in range(h):
                for x in range(w):
                    for k in range(a):  # mmdetection: anchor index (y * W + x) * A + k
                        j = offset + (y * w + x) * a + k
                        for c in range(C):
                            logits.append(leaf[b, k * C + c, y, x])
                            t = int(labels[b, j] == c) if weights[b, j] > 0 else -1
                            targets.append(t)
            offset += h * w * a
    i = 0
    for b in range(B):
        for j in range(total):
            if labels[b, j] < C:
                errors.append(_e(pred[i], gt[i]))
                i += 1
    want = _expect(logits, targets, errors, leaves)
    out = fn(leaves, labels, weights, pred, gt, C, ALRPLoss(period=100))
    _check(out["loss_cls"], out["loss_bbox"], leaves, want)


def test_detectron2_snippet() -> None:
    fn = _snippets()["alrp_losses_detectron2"]
    gen = torch.Generator().manual_seed(1)
    per_level = [12, 4]
    leaf = torch.randn(B, sum(per_level), C, generator=gen).requires_grad_()
    pred_logits = list(leaf.split(per_level, dim=1))
    r = sum(per_level)
    labels = torch.randint(-1, C + 4, (B, r), generator=gen).clamp(max=C)  # -1 ignored, C bg
    pred, gt = _boxes(B * r, gen).reshape(B, r, 4), _boxes(B * r, gen).reshape(B, r, 4)
    logits, targets, errors = [], [], []
    for b in range(B):
        for j in range(r):
            lab = int(labels[b, j])
            for c in range(C):
                logits.append(leaf[b, j, c])
                targets.append(-1 if lab == -1 else int(lab == c))
            if 0 <= lab < C:
                errors.append(_e(pred[b, j], gt[b, j]))
    want = _expect(logits, targets, errors, [leaf])
    out = fn(pred_logits, list(labels), pred, list(gt), ALRPLoss(period=100))
    _check(out["loss_cls"], out["loss_box_reg"], [leaf], want)


def test_ultralytics_snippet() -> None:
    fn = _snippets()["alrp_loss_ultralytics"]
    gen = torch.Generator().manual_seed(2)
    a = 20
    leaf = torch.randn(B, a, C, generator=gen).requires_grad_()
    fg = torch.rand(B, a, generator=gen) < 0.3
    cls = torch.randint(0, C, (B, a), generator=gen)
    target_scores = torch.zeros(B, a, C)
    target_scores[fg, cls[fg]] = torch.rand(int(fg.sum()), generator=gen) * 0.9 + 0.05
    pred, gt = _boxes(B * a, gen).reshape(B, a, 4), _boxes(B * a, gen).reshape(B, a, 4)
    logits, targets, errors = [], [], []
    for b in range(B):
        for j in range(a):
            for c in range(C):
                logits.append(leaf[b, j, c])
                targets.append(int(bool(fg[b, j]) and int(cls[b, j]) == c))
            if fg[b, j]:
                errors.append(_e(pred[b, j], gt[b, j]))
    want = _expect(logits, targets, errors, [leaf])
    cls_loss, box_loss = fn(leaf, target_scores, fg, pred, gt, ALRPLoss(period=100))
    _check(cls_loss, box_loss, [leaf], want)


@pytest.mark.slow
def test_torchvision_recipe_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    recipe = [code for code in _blocks() if "def train_one_epoch" in code]
    assert len(recipe) == 1
    exec(compile(recipe[0], "docs/integrations.md", "exec"), {})
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["model"]
    assert float(state["head.loss_module.weight"]) != 50.0  # two self-balance updates
    res = CliRunner().invoke(app, ["check-balance", "--from", str(tmp_path / "loss_inputs.pt")])
    assert res.exit_code == 0, res.output
