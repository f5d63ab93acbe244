"""torch.distributed behind the losses' :class:`~alrp_cli.losses.collective.Collective`.

The only module of alrp's losses path that imports ``torch.distributed``: the losses take
this object (``alrp_loss(..., collective=TorchDistributedCollective())``) and rank over the
global batch of the process group.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


class TorchDistributedCollective:
    """The losses' collective interface over a torch.distributed process group.

    Works with NCCL (CUDA tensors) and gloo (CPU tensors; CUDA tensors are staged through
    host memory, since gloo's all-gather takes CPU tensors only). The process group must be
    initialised before construction.

    Args:
        group: the process group; None for the default (world) group.

    Attributes:
        rank (int), world_size (int): this process in ``group``.
        bytes_sent (int): bytes of the tensors this rank has handed to collectives so far
            (the payload, including the all-gather's size exchange and padding; what the
            backend's algorithm moves on the wire is a small multiple of it).
        num_calls (int): number of torch.distributed collectives issued so far.
    """

    def __init__(self, group: dist.ProcessGroup | None = None) -> None:
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError("torch.distributed is not initialised (init_process_group first)")
        self.group = group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)
        self._host_only = dist.get_backend(group) == dist.Backend.GLOO
        self.bytes_sent = 0
        self.num_calls = 0

    def _send(self, tensor: Tensor) -> Tensor:
        self.bytes_sent += tensor.numel() * tensor.element_size()
        self.num_calls += 1
        return tensor.cpu() if self._host_only else tensor

    def all_gather(self, tensor: Tensor) -> list[Tensor]:
        """Every rank's ``tensor`` (Tensor[n_r, ...]; n_r may differ), in rank order.

        Two collectives: an all-gather of the first dimensions, then one of the tensors
        padded to the largest; the padding is cut off again.
        """
        device = tensor.device
        size = self._send(torch.tensor([tensor.shape[0]], dtype=torch.int64, device=device))
        sizes = [torch.empty_like(size) for _ in range(self.world_size)]
        dist.all_gather(sizes, size, group=self.group)
        counts = [int(s) for s in sizes]
        if max(counts) == 0:  # nothing to send anywhere (every rank knows it)
            return [tensor.new_zeros(tensor.shape) for _ in counts]
        padded = tensor.new_zeros((max(counts), *tensor.shape[1:]))
        padded[: tensor.shape[0]] = tensor
        padded = self._send(padded)
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded, group=self.group)
        return [p[:n].to(device) for p, n in zip(parts, counts, strict=True)]

    def all_reduce_sum(self, tensor: Tensor) -> Tensor:
        """The element-wise sum over the ranks (a new tensor; ``tensor`` is left as is)."""
        out = self._send(tensor.clone(memory_format=torch.contiguous_format))
        dist.all_reduce(out, op=dist.ReduceOp.SUM, group=self.group)
        return out.to(tensor.device)
