"""GroupNorm whose output for an image does not depend on the batch it is in."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class GroupNorm(nn.GroupNorm):
    """:class:`torch.nn.GroupNorm` without the batch-size check of ``F.group_norm``.

    GroupNorm normalises each image on its own, so one image gives what it gives in any
    batch. ``F.group_norm`` still refuses an input with a single value per group in the
    whole batch (the check BatchNorm needs): one image whose coarsest level is 1 × 1, with
    one channel per group, e.g. the last batch of an evaluation. Such a group normalises to
    its bias, exactly as it does in a larger batch; this module computes that instead of
    raising. Same parameters and state dict as ``nn.GroupNorm``.

    Input Tensor[N, C, *] (float), output the same shape and dtype.
    """

    def forward(self, input: Tensor) -> Tensor:
        return torch.group_norm(
            input, self.num_groups, self.weight, self.bias, self.eps, torch.backends.cudnn.enabled
        )
