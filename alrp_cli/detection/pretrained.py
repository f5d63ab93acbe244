"""ImageNet weights of the backbone, got the way torchvision gets them.

The official configurations start from ``pretrained='torchvision://resnet50'``
(configs/alrp_loss/alrp_loss_retinanet_r50_fpn_ATSS_100e_coco500.py:7): torchvision's
ImageNet ResNet weights, today ``ResNet50_Weights.IMAGENET1K_V1`` (``resnet50-0676ba61.pth``,
the 2020 re-serialisation of the ``resnet50-19c8e357.pth`` that mmcv's ``torchvision://``
named, pytorch/vision#2068). On first use they are downloaded into torch's cache
(``$TORCH_HOME/hub/checkpoints``) with a progress bar and their hash checked
(``torch.hub.download_url_to_file``, what ``torch.hub.load_state_dict_from_url`` calls),
then reused. A local copy (``--backbone-weights``) serves machines without internet.
Every file is read through :func:`alrp_cli.torchfile.read_torch_file` (weights only).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision
from torch import Tensor

from alrp_cli.detection.checkpoint import state_mismatch
from alrp_cli.detection.model import BACKBONES
from alrp_cli.errors import UserError
from alrp_cli.torchfile import read_torch_file

# Keys a torchvision ResNet state dict may hold that the detector's backbone does not need:
# the classifier, and the batch counters older files (the 2017 ImageNet ones) lack.
OPTIONAL = ("fc.weight", "fc.bias")
COUNTER = "num_batches_tracked"


def imagenet_weights(backbone: str) -> torchvision.models.WeightsEnum:
    """torchvision's ImageNet weights of ``backbone`` (``IMAGENET1K_V1``)."""
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {sorted(BACKBONES)}, got {backbone!r}")
    return getattr(torchvision.models, BACKBONES[backbone][2]).IMAGENET1K_V1


def weights_path(weights: torchvision.models.WeightsEnum) -> Path:
    """Where torchvision keeps downloaded ``weights``: ``$TORCH_HOME/hub/checkpoints/<file>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def cached_weights(
    backbone: str,
    *,
    progress: bool = True,
    on_download: Callable[[str, Path], None] | None = None,
) -> Path:
    """The cached ImageNet weights file of ``backbone``, downloaded first if missing.

    ``on_download(url, path)`` is called before a download starts. A download that fails
    (offline, a proxy, a wrong hash) is a UserError naming the URL, the cache path and
    ``--backbone-weights``; nothing is left in the cache.
    """
    weights = imagenet_weights(backbone)
    path = weights_path(weights)
    if path.is_file():
        return path
    if on_download is not None:
        on_download(weights.url, path)
    match = torch.hub.HASH_REGEX.search(path.name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # a temporary file renamed when complete, hash-checked: torch.hub's own download
        torch.hub.download_url_to_file(
            weights.url, str(path), match.group(1) if match else None, progress=progress
        )
    except Exception as err:  # URLError, HTTPError, timeouts, OSError, hash mismatch
        reason = str(getattr(err, "reason", None) or err) or type(err).__name__
        raise UserError(
            f"cannot download the ImageNet weights of {backbone} from {weights.url} "
            f"({reason}): place that file at {path}, or give a local copy with "
            "--backbone-weights FILE (or train from scratch with --no-pretrained)"
        ) from None
    return path


def check_backbone_state(state: object, backbone: str, source: str) -> dict[str, Tensor]:
    """``state`` as the ResNet state dict of ``backbone``, or a UserError naming ``source``.

    Every tensor the backbone needs must be there with its shape; the classifier (``fc``)
    and BatchNorm's ``num_batches_tracked`` may be missing; any other key is refused.
    """
    name = BACKBONES[backbone][0]
    with torch.device("meta"):  # shapes only: nothing is allocated or initialised
        expected = getattr(torchvision.models, name)().state_dict()
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise UserError(f"{source}: not a state dict (names -> tensors) of {backbone} weights")
    problem = state_mismatch(
        {k: v.shape for k, v in expected.items()},
        state,
        optional=lambda k: k in OPTIONAL or k.endswith(COUNTER),
        extra="unknown",
    )
    if problem:
        raise UserError(f"{source}: not torchvision's {backbone} weights: {problem}")
    return {k: v for k, v in state.items() if k not in OPTIONAL}


def backbone_state_dict(
    backbone: str,
    *,
    weights_file: str | os.PathLike[str] | None = None,
    progress: bool = True,
    on_download: Callable[[str, Path], None] | None = None,
) -> dict[str, Tensor]:
    """ImageNet weights for the ResNet of ``backbone``: ``weights_file`` (a torchvision
    state dict), else torchvision's file from the cache, downloaded on first use.

    Returns {name: Tensor} in torchvision's ResNet names (``layer1.0.conv1.weight``...),
    float32 on the CPU, without the classifier. Raises UserError (one line) when the file
    cannot be had, is damaged, or holds another network's weights.
    """
    if weights_file is not None:
        source = Path(weights_file)
        state = read_torch_file(source, "backbone weights file (--backbone-weights)")
        return check_backbone_state(state, backbone, f"{source} (--backbone-weights)")
    path = cached_weights(backbone, progress=progress, on_download=on_download)
    try:
        state = read_torch_file(path, "ImageNet weights file")
    except UserError as err:
        raise UserError(f"{err}; delete it to download it again") from None
    return check_backbone_state(state, backbone, str(path))
