"""Generated stand-ins for downloaded weights, shared by the detection and CLI tests."""

from __future__ import annotations

import torch
import torchvision


def imagenet_like(name: str = "resnet18", *, seed: int = 0) -> dict[str, torch.Tensor]:
    """A torchvision ResNet state dict as the 2017 ImageNet files hold it: with the
    classifier, without the BatchNorm batch counters; BatchNorm statistics not 0/1."""
    torch.manual_seed(seed)
    state = getattr(torchvision.models, name)().state_dict()
    for key in state:
        if key.endswith(("running_mean", "running_var", "bn1.weight", "bn1.bias")):
            state[key] = torch.rand_like(state[key]) + 0.5
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
