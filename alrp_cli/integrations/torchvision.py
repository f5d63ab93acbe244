"""aLRP Loss (or AP Loss, Rank & Sort Loss) as a drop-in loss for torchvision's RetinaNet
and FCOS.

``model.head = ALRPRetinaNetHead.from_head(model.head, period=iters_per_epoch)`` turns a
``torchvision.models.detection.RetinaNet`` into an aLRP-trained model;
``ALRPFCOSHead.from_head`` does the same for ``FCOS``. The new head reuses the old head's
modules (same weights, same ``forward``, same inference) and overrides only
``compute_loss``, which sees what torchvision passes it: the head outputs, the anchors and
torchvision's own matcher output ``matched_idxs`` (index of the matched box, -1
background, -2 ``Matcher.BETWEEN_THRESHOLDS`` ignored).

The loss, per batch (the ranking is over every (image, anchor, class) pair of the batch):

- logits ``cls_logits`` [B, A, C] flattened row-major; targets one-hot at each matched
  anchor's class, 0 elsewhere, -1 on every class of an ignored anchor (RetinaNet; FCOS
  ignores nothing);
- e = 1 − GIoU of each positive's decoded box (torchvision's box coder) and its matched
  box, in the order the positives appear in the flat logits (the flattening is
  :func:`alrp_cli.loss_inputs.flatten_head_outputs`, the one ``alrp train`` uses);
- ``loss``: one of ``alrp_cli.registry.names("head")``; its registry entry's
  :class:`~alrp_cli.registry.HeadForm` builds ``loss_module`` and computes the two parts.
  ``loss="alrp"``: :class:`~alrp_cli.losses.ALRPLoss` (self-balance state in this module's
  ``state_dict`` under ``loss_module.``); returns ``classification`` = L_cls and
  ``bbox_regression`` = w · L_loc, so their sum is aLRP Loss;
- ``loss="ap"``: ``classification`` = AP Loss, ``bbox_regression`` = torchvision's own
  regression loss of the head;
- ``loss="rs"``: :class:`~alrp_cli.losses.RSLoss` with each positive's IoU as its target
  (the IoU of its decoded box with its matched box, detached); ``classification`` =
  ranking + sorting, ``bbox_regression`` = the RS-ATSS box loss: GIoU loss weighted by each
  positive's highest class score (detached), divided by the weights' sum, times
  (ranking + sorting) / that box loss, recomputed every step (so both parts weigh the
  same; :func:`alrp_cli.registry.rs.rs_detector_loss`);
- FCOS also returns ``bbox_ctrness``: torchvision's centerness BCE unchanged
  (``centerness="bce"``, the default, because FCOS's inference multiplies the class score
  by the predicted centerness) or a zero that keeps the branch in the graph
  (``centerness="none"``).
"""

from __future__ import annotations

import copy
import os
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.models.detection.fcos import FCOSHead
from torchvision.models.detection.retinanet import RetinaNetHead

from alrp_cli import registry
from alrp_cli.loss_inputs import LossInputs, flatten_head_outputs
from alrp_cli.loss_inputs_file import Recorder
from alrp_cli.losses import Collective

CENTERNESS = ("bce", "none")


class _RankingLossMixin:
    """What both heads share: the loss module, its options, flattening the batch, and
    recording the loss inputs."""

    loss: str
    loss_module: nn.Module
    _recorder: Recorder

    def _setup_loss(
        self,
        loss: str,
        period: int,
        init_weight: float,
        delta: float | None,
        record: int,
        collective: Collective | None = None,
    ) -> None:
        entry = registry.get(loss, "head")
        form = entry.head
        assert form is not None
        self.loss = loss
        if delta is None:  # the loss's own: 1.0 for aLRP and AP, 0.5 for Rank & Sort
            delta = entry.delta
        module = form.make_module(
            period=period, init_weight=init_weight, delta=delta, collective=collective
        )
        # After super().__init__ (or a fresh nn.Module.__init__ in from_head).
        self.loss_module = module  # type: ignore[misc]
        self._recorder = Recorder(record)

    @property
    def recorded(self) -> list[dict[str, Tensor]]:
        """The recorded batches: dicts of "logits", "targets", "loc_errors" (detached CPU
        copies) and, for a loss with continuous targets, "ious"."""
        return self._recorder.batches

    @property
    def record_limit(self) -> int:
        """How many training batches are recorded (``record``)."""
        return self._recorder.limit

    def save_loss_inputs(
        self, path: str | os.PathLike[str], meta: dict[str, Any] | None = None
    ) -> None:
        """Write the recorded batches as ``alrp check-balance --from`` reads them.

        The file (written atomically) is ``{"version": 1, "batches": [{"logits": Tensor[N],
        "targets": Tensor[N], "loc_errors": Tensor[P]}, ...], "meta": {"delta": δ, ...}}``
        (see :mod:`alrp_cli.loss_inputs_file`).
        """
        if not self.recorded:
            raise ValueError("no loss inputs recorded: pass record=N and run training steps")
        info = {"source": type(self).__name__, "loss": self.loss, **(meta or {})}
        info.setdefault("delta", float(self.loss_module.delta))  # type: ignore[arg-type]
        self._recorder.save(path, info)

    @property
    def recording(self) -> bool:
        """Whether the next training batch's loss inputs will be kept."""
        return not self._recorder.full

    def _flatten(
        self,
        head_outputs: dict[str, Tensor],
        anchors: list[Tensor],
        matched_idxs: list[Tensor],
        targets: list[dict[str, Tensor]],
        *,
        decode: Any,
        ignore_value: int | None,
        loc_errors: bool = False,
    ) -> LossInputs:
        """The batch flattened, with e = 1 − GIoU where the loss, the caller
        (``loc_errors``) or a recording needs it, and IoUs where the loss takes them."""
        needs = registry.get(self.loss).needs
        return flatten_head_outputs(
            head_outputs["cls_logits"],
            head_outputs["bbox_regression"],
            torch.stack(anchors),
            torch.stack(matched_idxs),
            targets,
            decode=decode,
            ignore_value=ignore_value,
            loc_errors=loc_errors or registry.LOC_ERRORS in needs or self.recording,
            ious=registry.IOUS in needs,
        )

    def _ranking_loss(self, flat: LossInputs) -> tuple[Tensor, Tensor | None]:
        """(classification, the loss's own box loss; None: the head keeps torchvision's)."""
        if flat.loc_errors is not None and self.recording:
            self._recorder.record(flat.logits, flat.targets, flat.loc_errors, flat.ious)
        form = registry.get(self.loss, "head").head
        assert form is not None
        return form.apply(self.loss_module, flat)


def _adopt(cls: type[nn.Module], head: nn.Module, base: type[nn.Module]) -> Any:
    """An instance of ``cls`` holding ``head``'s modules, parameters, buffers and attributes."""
    if not isinstance(head, base):
        raise TypeError(f"from_head expects a {base.__name__}, got {type(head).__name__}")
    new = cls.__new__(cls)
    nn.Module.__init__(new)
    for name, child in head.named_children():
        new.add_module(name, child)
    for name, param in head.named_parameters(recurse=False):
        new.register_parameter(name, param)
    for name, buf in head.named_buffers(recurse=False):
        new.register_buffer(name, buf, persistent=name not in head._non_persistent_buffers_set)
    for key, value in head.__dict__.items():
        if key not in new.__dict__:
            new.__dict__[key] = copy.copy(value) if isinstance(value, list | dict) else value
    new.train(head.training)
    return new


class ALRPRetinaNetHead(_RankingLossMixin, RetinaNetHead):
    """torchvision's ``RetinaNetHead`` trained with aLRP Loss (or AP Loss, Rank & Sort Loss).

    Same modules and ``forward`` as ``RetinaNetHead``; ``compute_loss`` returns
    ``{"classification": L_cls, "bbox_regression": w · L_loc}`` (aLRP; their sum is the
    loss), ``{"classification": L_AP, "bbox_regression": torchvision's box loss}`` (AP) or
    ``{"classification": ranking + sorting, "bbox_regression": w · box loss}`` (RS).
    Build it with :meth:`from_head` from an existing head, or directly with
    ``RetinaNetHead``'s arguments plus the keyword options of :meth:`from_head`.
    """

    def __init__(
        self,
        in_channels: int,
        num_anchors: int,
        num_classes: int,
        norm_layer: Any = None,
        *,
        period: int,
        loss: str = "alrp",
        init_weight: float = 50.0,
        delta: float | None = None,
        record: int = 0,
        collective: Collective | None = None,
    ) -> None:
        super().__init__(in_channels, num_anchors, num_classes, norm_layer=norm_layer)
        self._setup_loss(loss, period, init_weight, delta, record, collective)

    @classmethod
    def from_head(
        cls,
        head: RetinaNetHead,
        *,
        period: int,
        loss: str = "alrp",
        init_weight: float = 50.0,
        delta: float | None = None,
        record: int = 0,
        collective: Collective | None = None,
    ) -> ALRPRetinaNetHead:
        """A head that shares ``head``'s modules and weights and trains with aLRP / AP Loss.

        Args:
            head: a torchvision ``RetinaNetHead`` (v1 or v2).
            period: training iterations per epoch, the self-balance period of aLRP Loss.
            loss: a loss of :mod:`alrp_cli.registry` offered for heads,
                ``registry.names("head")``: "alrp", "ap" or "rs".
            init_weight: aLRP's first weight of L_loc (50 in the paper).
            delta: δ of the smoothed step; None: the loss's published value (1.0 for aLRP
                and AP Loss, 0.5 for Rank & Sort Loss).
            record: keep the loss inputs of the first ``record`` training batches in
                ``self.recorded`` (see :meth:`save_loss_inputs`).
            collective: rank over the global batch of several processes (e.g.
                ``alrp_cli.detection.collective.TorchDistributedCollective()`` under DDP);
                then backpropagate ``world_size ×`` the loss, since DDP averages gradients.
        """
        new = _adopt(cls, head, RetinaNetHead)
        new._setup_loss(loss, period, init_weight, delta, record, collective)
        return new

    def compute_loss(
        self,
        targets: list[dict[str, Tensor]],
        head_outputs: dict[str, Tensor],
        anchors: list[Tensor],
        matched_idxs: list[Tensor],
    ) -> dict[str, Tensor]:
        """The loss dict of the batch: cls_logits Tensor[B, A, C], bbox_regression
        Tensor[B, A, 4], anchors B × Tensor[A, 4], matched_idxs B × Tensor[A] (int64)."""
        flat = self._flatten(
            head_outputs,
            anchors,
            matched_idxs,
            targets,
            decode=self.regression_head.box_coder.decode_single,
            ignore_value=self.classification_head.BETWEEN_THRESHOLDS,
        )
        cls, loc = self._ranking_loss(flat)
        if loc is None:
            loc = self.regression_head.compute_loss(targets, head_outputs, anchors, matched_idxs)
        return {"classification": cls, "bbox_regression": loc}


class ALRPFCOSHead(_RankingLossMixin, FCOSHead):
    """torchvision's ``FCOSHead`` trained with aLRP Loss (or AP Loss, Rank & Sort Loss).

    ``compute_loss`` returns ``classification`` and ``bbox_regression`` as
    :class:`ALRPRetinaNetHead` (AP Loss: torchvision's GIoU loss per positive), and
    ``bbox_ctrness``: torchvision's centerness BCE (``centerness="bce"``) or zero
    (``centerness="none"``; with Rank & Sort Loss, whose scores already rank by IoU, the
    published detectors have no centerness). FCOS ignores no location, so targets are 1 or 0.
    """

    def __init__(
        self,
        in_channels: int,
        num_anchors: int,
        num_classes: int,
        num_convs: int | None = 4,
        *,
        period: int,
        loss: str = "alrp",
        init_weight: float = 50.0,
        delta: float | None = None,
        centerness: str = "bce",
        record: int = 0,
        collective: Collective | None = None,
    ) -> None:
        super().__init__(in_channels, num_anchors, num_classes, num_convs)
        self._setup_loss(loss, period, init_weight, delta, record, collective)
        self._set_centerness(centerness)

    def _set_centerness(self, centerness: str) -> None:
        if centerness not in CENTERNESS:
            raise ValueError(f"centerness must be one of {CENTERNESS}, got {centerness!r}")
        self.centerness = centerness

    @classmethod
    def from_head(
        cls,
        head: FCOSHead,
        *,
        period: int,
        loss: str = "alrp",
        init_weight: float = 50.0,
        delta: float | None = None,
        centerness: str = "bce",
        record: int = 0,
        collective: Collective | None = None,
    ) -> ALRPFCOSHead:
        """As :meth:`ALRPRetinaNetHead.from_head`, for a torchvision ``FCOSHead``;
        ``centerness`` is "bce" (torchvision's centerness loss) or "none"."""
        new = _adopt(cls, head, FCOSHead)
        new._setup_loss(loss, period, init_weight, delta, record, collective)
        new._set_centerness(centerness)
        return new

    def compute_loss(
        self,
        targets: list[dict[str, Tensor]],
        head_outputs: dict[str, Tensor],
        anchors: list[Tensor],
        matched_idxs: list[Tensor],
    ) -> dict[str, Tensor]:
        """The loss dict of the batch: cls_logits Tensor[B, A, C], bbox_regression
        Tensor[B, A, 4], bbox_ctrness Tensor[B, A, 1], anchors B × Tensor[A, 4],
        matched_idxs B × Tensor[A] (int64, -1 background)."""
        flat = self._flatten(
            head_outputs,
            anchors,
            matched_idxs,
            targets,
            decode=self.box_coder.decode,
            ignore_value=None,
            loc_errors=True,
        )
        num_pos = max(1, flat.num_pos)
        cls, loc = self._ranking_loss(flat)
        if loc is None:  # torchvision's box loss of FCOS: GIoU loss over the positives
            assert flat.loc_errors is not None
            loc = flat.loc_errors.sum() / num_pos
        ctrness = head_outputs["bbox_ctrness"][flat.pos_image, flat.pos_anchor, 0]
        if self.centerness == "none":
            ctr_loss = head_outputs["bbox_ctrness"].sum() * 0.0
        else:
            ctr_loss = self._centerness_loss(ctrness, flat.anchors, flat.gt_boxes) / num_pos
        return {"classification": cls, "bbox_regression": loc, "bbox_ctrness": ctr_loss}

    def _centerness_loss(self, ctrness: Tensor, anchor_boxes: Tensor, gt_boxes: Tensor) -> Tensor:
        """torchvision's centerness BCE (summed) over the positives: Tensor[P] logits."""
        if ctrness.numel() == 0:
            return ctrness.sum()
        reg_targets = self.box_coder.encode(anchor_boxes, gt_boxes)
        left_right, top_bottom = reg_targets[:, [0, 2]], reg_targets[:, [1, 3]]
        target = torch.sqrt(
            (left_right.min(dim=-1)[0] / left_right.max(dim=-1)[0])
            * (top_bottom.min(dim=-1)[0] / top_bottom.max(dim=-1)[0])
        )
        return nn.functional.binary_cross_entropy_with_logits(ctrness, target, reduction="sum")
