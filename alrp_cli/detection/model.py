"""The detector: ResNet backbone + FPN P3–P7 + RetinaNet-style head, from torchvision parts.

Only what torchvision lacks is written here: anchors at the fixed FPN strides (torchvision's
``AnchorGenerator`` infers strides from image/feature sizes, which is wrong for sizes that are
not multiples of 128) and unrounded (:mod:`.anchors`), P6/P7 as the official FPN makes them
(:class:`ExtraLevels`), and the glue that returns flat per-anchor outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.retinanet import (
    RetinaNetClassificationHead,
    RetinaNetRegressionHead,
)
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock

from alrp_cli import registry
from alrp_cli.detection.anchors import STRIDES, ExactAnchorGenerator, anchor_sizes
from alrp_cli.detection.group_norm import GroupNorm

BACKBONES = {
    "resnet18": ("resnet18", [128, 256, 512], "ResNet18_Weights"),
    "resnet34": ("resnet34", [128, 256, 512], "ResNet34_Weights"),
    "resnet50": ("resnet50", [512, 1024, 2048], "ResNet50_Weights"),
    "resnet101": ("resnet101", [512, 1024, 2048], "ResNet101_Weights"),
}
P6_SOURCES = ("c5", "p5")
# Box coder of the published aLRP configuration: target stds (0.1, 0.1, 0.2, 0.2).
BOX_CODER_WEIGHTS = (10.0, 10.0, 5.0, 5.0)


class Anchors(nn.Module):
    """Anchors for a square-or-not input of a given size, cached per (size, device).

    ``scales_per_octave`` sizes per level (octave base scale 4, unrounded) × ``ratios``.
    Returns XYXY anchors Tensor[A, 4] float32 ordered (level, y, x, anchor) like the head's
    outputs, and the number of anchors per level.
    """

    def __init__(self, scales_per_octave: int, ratios: tuple[float, ...]) -> None:
        super().__init__()
        sizes = anchor_sizes(scales_per_octave)
        self.generator = ExactAnchorGenerator(sizes, (tuple(ratios),) * len(sizes))
        self.num_per_location = self.generator.num_anchors_per_location()[0]
        self._cache: dict[tuple, tuple[Tensor, list[int]]] = {}

    def forward(self, feature_sizes: list[tuple[int, int]], device: torch.device) -> Tensor:
        key = (tuple(feature_sizes), str(device))
        if key not in self._cache:
            self.generator.set_cell_anchors(torch.float32, device)
            strides = [[torch.tensor(s, dtype=torch.int64, device=device)] * 2 for s in STRIDES]
            per_level = self.generator.grid_anchors([list(s) for s in feature_sizes], strides)
            counts = [int(a.shape[0]) for a in per_level]
            self._cache[key] = (torch.cat(per_level), counts)
        return self._cache[key][0]

    def counts(self, feature_sizes: list[tuple[int, int]], device: torch.device) -> list[int]:
        """Anchors per level for these feature sizes."""
        self(feature_sizes, device)
        return self._cache[(tuple(feature_sizes), str(device))][1]


class ExtraLevels(ExtraFPNBlock):
    """P6 and P7 as mmdetection's FPN with ``add_extra_convs``: P6 = conv3x3/2 of C5
    (``'on_input'``, the official configs, e.g. configs/_base_/models/retinanet_r50_fpn.py:19)
    or of P5 (``'on_output'``); P7 = conv3x3/2 of P6, no ReLU between
    (``relu_before_extra_convs=False``, mmdet/models/necks/fpn.py:73, 213-216)."""

    def __init__(self, c5_channels: int, channels: int, *, source: str = "c5") -> None:
        super().__init__()
        if source not in P6_SOURCES:
            raise ValueError(f"source must be one of {P6_SOURCES}, got {source!r}")
        self.source = source
        self.p6 = nn.Conv2d(c5_channels if source == "c5" else channels, channels, 3, 2, 1)
        self.p7 = nn.Conv2d(channels, channels, 3, 2, 1)

    def forward(
        self, p: list[Tensor], c: list[Tensor], names: list[str]
    ) -> tuple[list[Tensor], list[str]]:
        p6 = self.p6(c[-1] if self.source == "c5" else p[-1])
        p.extend([p6, self.p7(p6)])
        names.extend(["p6", "p7"])
        return p, names


@dataclass
class HeadOutput:
    """Raw head outputs for a batch: ``cls`` Tensor[B, A, C] logits, ``reg`` Tensor[B, A, 4]
    box deltas, ``anchors`` Tensor[A, 4] XYXY, ``level_counts`` anchors per FPN level."""

    cls: Tensor
    reg: Tensor
    anchors: Tensor
    level_counts: list[int]


def init_fpn_(fpn: nn.Module) -> None:
    """Initialise every conv of the FPN (laterals, outputs, P6, P7) as mmdetection's FPN:
    ``xavier_init(m, distribution='uniform')`` — Xavier-uniform weights (gain 1), zero bias
    (mmdet/models/necks/fpn.py:159-163; torchvision's FPN uses Kaiming-uniform, a = 1)."""
    for module in fpn.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


class Detector(nn.Module):
    """ResNet + FPN P3–P7 + RetinaNet head (4 convs per tower, optional GroupNorm, prior bias).

    Defaults are the official aLRP head: no normalisation in the towers, conv weights
    N(0, 0.01²), classification prior 0.01 (mmdet/models/dense_heads/alrp_loss_retina_head.py:
    40, 102-110; torchvision's heads initialise the same way), P6 from C5, FPN convs
    Xavier-uniform. ``anchors`` = (scales per octave, ratios); None: the official aLRP
    anchors of ``assigner`` (the default loss's recipe in :mod:`alrp_cli.registry`).

    ``pretrained``: the backbone starts from ImageNet weights and trains as the official
    configuration's (``frozen_stages=1``, ``norm_eval=True``, ATSS cfg:13-15, i.e.
    configs/alrp_loss/alrp_loss_retinanet_r50_fpn_ATSS_100e_coco500.py; mmdetection's
    ``ResNet._freeze_stages`` and ``ResNet.train``, mmdet/models/backbones/resnet.py:569-645):
    the stem and stage 1 are frozen, every BatchNorm of the backbone stays in eval mode
    (running statistics fixed) while the affine parameters of stages 2–4 train.
    ``backbone_weights`` (a checked torchvision ResNet state dict, see
    :func:`alrp_cli.detection.pretrained.backbone_state_dict`) is loaded into the ResNet;
    without it the weights come later (a checkpoint). Not pretrained: ordinary BatchNorm
    that learns its statistics, nothing frozen.

    ``forward(images Tensor[B, 3, H, W] float in [0, 1])`` returns a :class:`HeadOutput`.
    Images are normalised with the ImageNet mean/std inside the model.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        backbone: str = "resnet50",
        assigner: str = "atss",
        head_channels: int = 256,
        group_norm: bool = False,
        pretrained: bool = False,
        backbone_weights: Mapping[str, Tensor] | None = None,
        prior_probability: float = 0.01,
        p6_from: str = "c5",
        anchors: tuple[int, tuple[float, ...]] | None = None,
    ) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {sorted(BACKBONES)}, got {backbone!r}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if backbone_weights is not None and not pretrained:
            raise ValueError("backbone_weights needs pretrained=True")
        name, in_channels, _ = BACKBONES[backbone]
        resnet = getattr(torchvision.models, name)()
        if backbone_weights is not None:
            # strict=False: the 2017 ImageNet files have no num_batches_tracked counters
            resnet.load_state_dict(dict(backbone_weights), strict=False)
        self.norm_eval = pretrained
        if pretrained:  # mmdetection's frozen_stages=1: the stem and stage 1
            for module in (resnet.conv1, resnet.bn1, resnet.layer1):
                module.requires_grad_(False)
        self.backbone = BackboneWithFPN(
            resnet,
            {"layer2": "c3", "layer3": "c4", "layer4": "c5"},
            in_channels,
            head_channels,
            extra_blocks=ExtraLevels(in_channels[-1], head_channels, source=p6_from),
        )
        init_fpn_(self.backbone.fpn)
        if anchors is None:  # the one place anchors resolve: the loss's recipe
            anchors = registry.default_anchors(registry.DEFAULT_LOSS, assigner)
        self.anchors = Anchors(anchors[0], tuple(anchors[1]))
        a = self.anchors.num_per_location
        norm_layer = partial(GroupNorm, min(32, head_channels)) if group_norm else None
        self.cls_head = RetinaNetClassificationHead(
            head_channels, a, num_classes, prior_probability, norm_layer=norm_layer
        )
        self.reg_head = RetinaNetRegressionHead(head_channels, a, norm_layer=norm_layer)
        self.box_coder = det_utils.BoxCoder(BOX_CODER_WEIGHTS)
        self.num_classes = num_classes
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def train(self, mode: bool = True) -> Detector:
        """Training mode; with ``norm_eval`` the backbone's BatchNorm layers stay in eval
        mode, as mmdetection's ``ResNet.train`` (``norm_eval=True``)."""
        super().train(mode)
        if mode and self.norm_eval:
            for module in self.backbone.body.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def forward(self, images: Tensor) -> HeadOutput:
        features = list(self.backbone((images - self.mean) / self.std).values())
        sizes = [(int(f.shape[-2]), int(f.shape[-1])) for f in features]
        anchors = self.anchors(sizes, images.device)
        return HeadOutput(
            cls=self.cls_head(features),
            reg=self.reg_head(features),
            anchors=anchors,
            level_counts=self.anchors.counts(sizes, images.device),
        )

    def decode(self, deltas: Tensor, anchors: Tensor) -> Tensor:
        """Decode box deltas Tensor[..., 4] against anchors Tensor[..., 4] into XYXY boxes."""
        shape = deltas.shape
        boxes = self.box_coder.decode_single(deltas.reshape(-1, 4), anchors.reshape(-1, 4))
        return boxes.reshape(shape)
