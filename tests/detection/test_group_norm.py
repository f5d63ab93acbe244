"""The detector's GroupNorm: an image's output does not depend on its batch."""

from __future__ import annotations

import torch
from torch import nn

from alrp_cli.detection.group_norm import GroupNorm


def test_equals_torch_group_norm_and_does_not_depend_on_the_batch() -> None:
    torch.manual_seed(0)
    ours, reference = GroupNorm(4, 8), nn.GroupNorm(4, 8)
    with torch.no_grad():
        for p in (*ours.parameters(), *reference.parameters()):
            p.copy_(torch.randn_like(p))
        reference.load_state_dict(ours.state_dict())
    x = torch.randn(3, 8, 5, 7)
    torch.testing.assert_close(ours(x), reference(x))
    torch.testing.assert_close(ours(x[:1]), reference(x)[:1])
    assert ours.state_dict().keys() == reference.state_dict().keys()


def test_one_value_per_group_gives_what_a_larger_batch_gives() -> None:
    norm, reference = GroupNorm(8, 8), nn.GroupNorm(8, 8)
    with torch.no_grad():
        norm.bias.copy_(torch.arange(8.0))
    reference.load_state_dict(norm.state_dict())
    x = torch.randn(1, 8, 1, 1, requires_grad=True)
    out = norm(x)  # nn.GroupNorm raises "expected more than 1 value per channel" here
    # each group holds one value: it normalises to its bias (up to rounding / sqrt(eps))
    torch.testing.assert_close(out, torch.arange(8.0).view(1, 8, 1, 1), atol=1e-4, rtol=0)
    torch.testing.assert_close(out, reference(torch.cat([x, torch.randn_like(x)]))[:1])
    out.sum().backward()  # still differentiable
    assert x.grad is not None and torch.isfinite(x.grad).all()
