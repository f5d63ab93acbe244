"""The aLRP heads for torchvision's RetinaNet and FCOS, on tiny synthetic batches.

The oracle for the loss is a loop over (image, anchor) built by hand from the matcher output
torchvision passes the head, fed to ``alrp_loss`` / ``ap_loss``; for what the heads take
over from torchvision (AP Loss's box loss, FCOS's centerness) it is torchvision's own head.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.fcos import FCOSHead
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.ops import box_iou, generalized_box_iou
from typer.testing import CliRunner

from alrp_cli.cli.app import app
from alrp_cli.integrations.torchvision import ALRPFCOSHead, ALRPRetinaNetHead
from alrp_cli.losses import alrp_loss, ap_loss, rs_loss
from tests.helpers.tiny_torchvision import synthetic_batch, tiny_fcos, tiny_retinanet

BUILD = {"retinanet": (tiny_retinanet, ALRPRetinaNetHead), "fcos": (tiny_fcos, ALRPFCOSHead)}


def _model(kind: str, **options: Any) -> torch.nn.Module:
    build, head_cls = BUILD[kind]
    model = build()
    model.head = head_cls.from_head(model.head, **{"period": 10_000, **options})
    return model.train()


def _capture(model: torch.nn.Module, images: list[Tensor], targets: list[dict]) -> dict:
    """The arguments torchvision passes ``head.compute_loss`` in one training forward."""
    seen: dict[str, Any] = {}
    original = model.head.compute_loss

    def spy(targets, head_outputs, anchors, matched_idxs):  # type: ignore[no-untyped-def]
        seen.update(targets=targets, outputs=head_outputs, anchors=anchors, matched=matched_idxs)
        return original(targets, head_outputs, anchors, matched_idxs)

    model.head.compute_loss = spy
    try:
        model(images, targets)
    finally:
        del model.head.compute_loss
    seen["outputs"] = {k: v.detach() for k, v in seen["outputs"].items()}
    return seen


def _leaves(outputs: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.clone().requires_grad_() for k, v in outputs.items()}


def _by_hand(seen: dict, leaves: dict[str, Tensor], decode: Any, ignore: int | None) -> tuple:
    """Flat logits, targets and e = 1 − GIoU, one (image, anchor) at a time."""
    cls, reg = leaves["cls_logits"], leaves["bbox_regression"]
    rows, labels, errors = [], [], []
    for b, (t, matched, anchors) in enumerate(
        zip(seen["targets"], seen["matched"], seen["anchors"], strict=True)
    ):
        for a, m in enumerate(matched.tolist()):
            rows.append(cls[b, a])
            row = [0] * cls.shape[2]
            if m >= 0:
                row[int(t["labels"][m])] = 1
                box = decode(reg[b, a][None], anchors[a][None])
                errors.append(1.0 - generalized_box_iou(box, t["boxes"][m][None])[0, 0])
            elif ignore is not None and m == ignore:
                row = [-1] * cls.shape[2]
            labels.append(row)
    logits = torch.stack(rows).reshape(-1)
    return logits, torch.tensor(labels).reshape(-1), torch.stack(errors)


def _by_hand_rs(seen: dict, leaves: dict[str, Tensor], decode: Any, ignore: int | None) -> tuple:
    """Rank & Sort's inputs one (image, anchor) at a time: flat logits, targets with each
    positive's IoU (detached), e = 1 − GIoU and each positive anchor's highest class score."""
    logits, flat_targets, errors = _by_hand(seen, leaves, decode, ignore)
    cls, reg = leaves["cls_logits"], leaves["bbox_regression"]
    ious, scores = [], []
    for b, (t, matched, anchors) in enumerate(
        zip(seen["targets"], seen["matched"], seen["anchors"], strict=True)
    ):
        for a, m in enumerate(matched.tolist()):
            if m >= 0:
                box = decode(reg[b, a].detach()[None], anchors[a][None])
                ious.append(float(box_iou(box, t["boxes"][m][None])[0, 0]))
                scores.append(float(torch.sigmoid(cls[b, a].detach()).max()))
    quality = flat_targets.to(torch.float64)
    quality[flat_targets == 1] = torch.tensor(ious, dtype=torch.float64)
    return logits, quality, errors, torch.tensor(scores)


def _grads(total: Tensor, leaves: dict[str, Tensor]) -> list[Tensor]:
    keys = ("cls_logits", "bbox_regression")
    return list(torch.autograd.grad(total, [leaves[k] for k in keys], allow_unused=True))


def _close(a: Tensor | None, b: Tensor | None) -> None:
    a = torch.zeros(()) if a is None else a
    b = torch.zeros(()) if b is None else b
    torch.testing.assert_close(a.double(), b.double().expand_as(a), atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", ["retinanet", "fcos"])
def test_alrp_head_equals_alrp_loss_on_inputs_flattened_by_hand(kind: str) -> None:
    model = _model(kind)
    images, targets = synthetic_batch(4, seed=3)
    seen = _capture(model, images, targets)
    head = model.head
    if kind == "retinanet":
        ignore, decode = det_utils.Matcher.BETWEEN_THRESHOLDS, head.regression_head.box_coder
        decode = decode.decode_single
        assert any((m == ignore).any() for m in seen["matched"])  # the ignore rule is exercised
    else:
        ignore, decode = None, head.box_coder.decode

    leaves = _leaves(seen["outputs"])
    got = head.compute_loss(seen["targets"], leaves, seen["anchors"], seen["matched"])
    got_grads = _grads(sum(got.values()), leaves)

    hand = _leaves(seen["outputs"])
    logits, flat_targets, errors = _by_hand(seen, hand, decode, ignore)
    assert int((flat_targets == 1).sum()) == len(errors) > 0
    assert bool((flat_targets == -1).any()) == (kind == "retinanet")
    want = alrp_loss(logits, flat_targets, errors, delta=1.0)
    total = want.cls + 50.0 * want.loc
    extra = got.get("bbox_ctrness")
    if extra is not None:
        total = total + extra.detach()  # FCOS's centerness term: tested against torchvision below
    want_grads = _grads(total, hand)

    _close(got["classification"], want.cls)
    _close(got["bbox_regression"], 50.0 * want.loc)
    for g, w in zip(got_grads, want_grads, strict=True):
        _close(g, w)
    assert float(got["bbox_regression"]) > 0 and got_grads[1].abs().sum() > 0


@pytest.mark.parametrize("kind", ["retinanet", "fcos"])
def test_rs_head_is_the_rs_atss_loss_on_inputs_flattened_by_hand(kind: str) -> None:
    model = (
        _model(kind, loss="rs", centerness="none") if kind == "fcos" else _model(kind, loss="rs")
    )
    assert model.head.loss_module.delta == 0.5  # the published δ, by default
    images, targets = synthetic_batch(4, seed=3)
    seen = _capture(model, images, targets)
    head = model.head
    if kind == "retinanet":
        ignore = det_utils.Matcher.BETWEEN_THRESHOLDS
        decode = head.regression_head.box_coder.decode_single
    else:
        ignore, decode = None, head.box_coder.decode

    leaves = _leaves(seen["outputs"])
    got = head.compute_loss(seen["targets"], leaves, seen["anchors"], seen["matched"])
    got_grads = _grads(got["classification"] + got["bbox_regression"], leaves)

    hand = _leaves(seen["outputs"])
    logits, quality, errors, scores = _by_hand_rs(seen, hand, decode, ignore)
    assert len(torch.unique(quality[quality > 0])) > 1  # IoU targets, not all equal
    want = rs_loss(logits, quality, delta=0.5)
    cls = want.ranking + want.sorting
    box = (scores * errors).sum() / scores.sum()
    weight = float(cls.detach()) / float(box.detach())
    want_grads = _grads(cls + weight * box, hand)

    _close(got["classification"], cls)
    _close(got["bbox_regression"], cls)  # w · box loss = ranking + sorting, by construction
    for g, w in zip(got_grads, want_grads, strict=True):
        _close(g, w)
    assert float(want.sorting) > 0 and got_grads[1].abs().sum() > 0


@pytest.mark.parametrize("kind", ["retinanet", "fcos"])
def test_ap_head_is_ap_loss_plus_torchvisions_box_losses(kind: str) -> None:
    model = _model(kind, loss="ap")
    images, targets = synthetic_batch(4, seed=4)
    seen = _capture(model, images, targets)
    head = model.head
    ignore = det_utils.Matcher.BETWEEN_THRESHOLDS if kind == "retinanet" else None
    decode = head.regression_head.box_coder.decode_single if kind == "retinanet" else None
    decode = decode or head.box_coder.decode

    leaves = _leaves(seen["outputs"])
    got = head.compute_loss(seen["targets"], leaves, seen["anchors"], seen["matched"])
    hand = _leaves(seen["outputs"])
    logits, flat_targets, _ = _by_hand(seen, hand, decode, ignore)
    want_cls = ap_loss(logits, flat_targets, delta=1.0)
    _close(got["classification"], want_cls)
    _close(_grads(got["classification"], leaves)[0], _grads(want_cls, hand)[0])

    # torchvision's own head (same modules) gives the box and centerness losses.
    plain = (RetinaNetHead if kind == "retinanet" else FCOSHead).compute_loss
    ref = plain(head, seen["targets"], _leaves(seen["outputs"]), seen["anchors"], seen["matched"])
    assert set(got) == set(ref)
    for key in set(ref) - {"classification"}:
        _close(got[key], ref[key])


def test_fcos_alrp_keeps_torchvisions_centerness_or_drops_it() -> None:
    images, targets = synthetic_batch(2, seed=5)
    for centerness in ("bce", "none"):
        model = _model("fcos", centerness=centerness)
        seen = _capture(model, images, targets)
        leaves = _leaves(seen["outputs"])
        got = model.head.compute_loss(seen["targets"], leaves, seen["anchors"], seen["matched"])
        ref = FCOSHead.compute_loss(
            model.head, seen["targets"], seen["outputs"], seen["anchors"], seen["matched"]
        )
        want = ref["bbox_ctrness"] if centerness == "bce" else torch.zeros(())
        _close(got["bbox_ctrness"], want)
        (grad,) = torch.autograd.grad(got["bbox_ctrness"], leaves["bbox_ctrness"])
        assert bool(grad.abs().sum() > 0) == (centerness == "bce")


@pytest.mark.parametrize("kind", ["retinanet", "fcos"])
def test_from_head_reuses_the_modules_and_adds_only_the_loss_state(kind: str) -> None:
    build, head_cls = BUILD[kind]
    model = build()
    old = model.head
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.head = head_cls.from_head(old, period=7)
    assert isinstance(model.head, type(old)) and isinstance(model.head, head_cls)
    assert model.head.classification_head is old.classification_head
    assert model.head.regression_head is old.regression_head
    after = model.state_dict()
    assert set(after) - set(before) == {
        "head.loss_module.weight",
        "head.loss_module.cls_sum",
        "head.loss_module.loc_sum",
        "head.loss_module._extra_state",
    }
    for k, v in before.items():
        assert torch.equal(after[k], v), k
    images, _ = synthetic_batch(2, seed=6)
    model.eval()
    with torch.no_grad():
        features = list(model.backbone(model.transform(images)[0].tensors).values())
        new_out, old_out = model.head(features), old(features)
        detections = model(images)
    for key in old_out:
        assert torch.equal(new_out[key], old_out[key])
    assert len(detections) == 2 and {"boxes", "scores", "labels"} <= set(detections[0])


def test_from_head_rejects_bad_arguments() -> None:
    model = tiny_retinanet()
    with pytest.raises(TypeError, match="RetinaNetHead"):
        ALRPFCOSHead.from_head(model.head, period=10)
    with pytest.raises(ValueError, match="loss must be one of"):
        ALRPRetinaNetHead.from_head(model.head, period=10, loss="focal")
    with pytest.raises(ValueError, match="period must be >= 1"):
        ALRPRetinaNetHead.from_head(model.head, period=0)
    with pytest.raises(ValueError, match="centerness"):
        ALRPFCOSHead.from_head(tiny_fcos().head, period=10, centerness="sqrt")
    with pytest.raises(ValueError, match="no loss inputs recorded"):
        ALRPRetinaNetHead.from_head(model.head, period=10).save_loss_inputs("unused.pt")


def test_direct_construction_matches_torchvisions_head() -> None:
    torch.manual_seed(0)
    plain = RetinaNetHead(16, 3, 2)
    torch.manual_seed(0)
    head = ALRPRetinaNetHead(16, 3, 2, period=5, loss="ap")
    assert head.loss == "ap" and set(head.state_dict()) == set(plain.state_dict())
    for k, v in plain.state_dict().items():
        assert torch.equal(head.state_dict()[k], v)


def _train(
    model: torch.nn.Module, steps: int, seed: int = 0, lr: float = 1e-3
) -> list[dict[str, float]]:
    images, targets = synthetic_batch(4, seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for _ in range(steps):
        losses = model(images, targets)
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
        history.append({k: float(v.detach()) for k, v in losses.items()})
    return history


@pytest.mark.parametrize(("kind", "lr"), [("retinanet", 1e-2), ("fcos", 1e-3)])
def test_training_lowers_the_alrp_loss(kind: str, lr: float) -> None:
    model = _model(kind)
    history = _train(model, 15, lr=lr)
    weight = float(model.head.loss_module.weight)
    # aLRP Loss itself is L_cls + L_loc (e = 1 − GIoU ≤ 2, so in [0, 2]); the head returns
    # L_cls and w · L_loc. At the start every positive is outranked by many negatives: ~1.
    alrp = [h["classification"] + h["bbox_regression"] / weight for h in history]
    assert alrp[0] > 0.99
    assert sum(alrp[-3:]) / 3 < 0.85 * sum(alrp[:3]) / 3, alrp
    assert history[-1]["classification"] < 0.85 * history[0]["classification"]


def test_self_balance_state_resumes_from_the_state_dict() -> None:
    model = _model("retinanet", period=3)
    _train(model, 4)  # one update of w after step 3, one step into the next period
    state = copy.deepcopy(model.state_dict())  # state_dict() holds the live buffers
    assert float(state["head.loss_module.weight"]) != 50.0
    assert state["head.loss_module._extra_state"] == {"count": 1}

    resumed = _model("retinanet", period=3)
    resumed.load_state_dict(state)
    assert resumed.head.loss_module.count == 1
    for m in (model, resumed):
        _train(m, 2, seed=1)  # completes the period: w updates from the restored sums
    assert float(resumed.head.loss_module.weight) == float(model.head.loss_module.weight)
    assert float(model.head.loss_module.weight) != float(state["head.loss_module.weight"])


@pytest.mark.parametrize(("loss", "delta"), [("alrp", 1.0), ("rs", 0.5)])
def test_recorded_inputs_pass_check_balance(tmp_path: Path, loss: str, delta: float) -> None:
    model = _model("retinanet", record=2, loss=loss)
    _train(model, 3)
    assert len(model.head.recorded) == 2
    batch = model.head.recorded[0]
    # Rank & Sort's recordings also hold each positive's IoU (its target)
    extra = {"ious"} if loss == "rs" else set()
    assert set(batch) == {"logits", "targets", "loc_errors", *extra}
    assert int((batch["targets"] == 1).sum()) == batch["loc_errors"].numel() > 0
    assert bool((batch["targets"] == -1).any())

    path, report = tmp_path / "inputs.pt", tmp_path / "balance.json"
    model.head.save_loss_inputs(str(path), meta={"model": "tiny retinanet"})
    res = CliRunner().invoke(app, ["check-balance", "--from", str(path), "--json", str(report)])
    assert res.exit_code == 0, res.output
    doc = json.loads(report.read_text())
    assert doc["config"]["deltas"] == [delta]
    checked = {(e["name"], e["part"]): e for e in doc["losses"] if e["checked"]}
    assert set(checked) == {("alrp", None), ("ap", None), ("rs", "ranking"), ("rs", "sorting")}
    assert all(e["passed"] and e["trials"] == 2 for e in checked.values())
    assert max(e["worst_rel_gap"] for e in checked.values()) < 1e-5
    # Without recorded IoUs Rank & Sort says what it takes instead.
    assert len(doc["notes"]) == (loss != "rs")


@pytest.mark.parametrize("kind", ["retinanet", "fcos"])
def test_a_batch_without_objects_gives_zero_loss_and_a_usable_gradient(kind: str) -> None:
    model = _model(kind)
    images, _ = synthetic_batch(2, seed=7)
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}] * 2
    losses = model(images, empty)
    total = sum(losses.values())
    total.backward()
    assert float(total) == 0.0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("loss", ["alrp", "ap", "rs"])
def test_with_a_collective_two_ranks_give_the_one_process_loss_and_gradients(loss: str) -> None:
    from alrp_cli.losses.collective import run_ranks

    torch.manual_seed(0)
    model = _model("retinanet", loss=loss)
    images, targets = synthetic_batch(4, seed=3)
    seen = _capture(model, images, targets)
    head = copy.deepcopy(model.head)
    leaves = _leaves(seen["outputs"])
    whole = head.compute_loss(seen["targets"], leaves, seen["anchors"], seen["matched"])
    sum(whole.values()).backward()

    def rank(collective) -> tuple[dict[str, float], dict[str, Tensor]]:
        part = slice(2 * collective.rank, 2 * collective.rank + 2)
        local = copy.deepcopy(model.head)
        local.loss_module.collective = collective
        mine = {k: v[part].clone().requires_grad_() for k, v in seen["outputs"].items()}
        out = local.compute_loss(
            seen["targets"][part], mine, seen["anchors"][part], seen["matched"][part]
        )
        sum(out.values()).backward()
        return {k: float(v) for k, v in out.items()}, {k: v.grad for k, v in mine.items()}

    ranks = run_ranks(2, rank)
    # AP Loss keeps torchvision's box loss, normalised by each process's own positives.
    global_parts = ("classification",) if loss == "ap" else ("classification", "bbox_regression")
    for values, _ in ranks:
        for key in global_parts:
            assert values[key] == pytest.approx(float(whole[key]), rel=1e-6, abs=1e-7), key
    for key in ("cls_logits", "bbox_regression")[: len(global_parts)]:
        joined = torch.cat([grads[key] for _, grads in ranks])
        torch.testing.assert_close(joined, leaves[key].grad, rtol=1e-5, atol=1e-7)
