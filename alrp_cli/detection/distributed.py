"""One training process among ``world_size``: torchrun's environment, the process group and
the few collectives the training loop needs.

``torchrun`` (or ``alrp train --nproc N``) starts one process per device and sets ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`init_distributed` turns that into a process group
(NCCL on CUDA, gloo on CPU) and a :class:`Dist`. Without those variables :class:`Dist` is the
single process (rank 0 of 1) and every collective is the identity, so the loop has one code
path for both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as tdist
from torch import Tensor, nn

from alrp_cli.device import resolve_device
from alrp_cli.errors import UserError


@dataclass
class Dist:
    """This process's place in the run: ``rank`` of ``world_size`` (``backend`` None when alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    def all_reduce_sum(self, t: Tensor) -> Tensor:
        """The element-wise sum of ``t`` over the ranks (``t`` itself when alone)."""
        if self.distributed:
            tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
        return t

    def any(self, flag: bool | int) -> bool:
        """True on every rank when ``flag`` is true on any rank."""
        if not self.distributed:
            return bool(flag)
        t = torch.tensor([float(bool(flag))], device=self.device)
        return bool(self.all_reduce_sum(t).item() > 0)

    def barrier(self) -> None:
        """Wait until every rank arrives here."""
        if self.distributed:
            tdist.barrier()

    def gather_objects(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` in rank order on rank 0, None on the others."""
        if not self.distributed:
            return [obj]
        out: list[Any] | None = [None] * self.world_size if self.is_main else None
        tdist.gather_object(obj, out, dst=0)
        return out

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.distributed:
            return obj
        box = [obj]
        tdist.broadcast_object_list(box, src=0)
        return box[0]

    @property
    def device(self) -> torch.device:
        """The device collectives' tensors live on (NCCL needs CUDA tensors)."""
        if self.backend == "nccl":
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def collective(self) -> Any:
        """The loss's collective over the whole group (None when alone)."""
        if not self.distributed:
            return None
        from alrp_cli.detection.collective import TorchDistributedCollective

        return TorchDistributedCollective()

    def close(self) -> None:
        """Leave the process group (if this process joined one)."""
        if self.backend is not None and tdist.is_initialized():
            tdist.destroy_process_group()


def launched_by_torchrun() -> bool:
    """torchrun's variables are set (this process is one of ``WORLD_SIZE``)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def env_rank() -> int:
    """This process's rank as torchrun's environment says (0 when not launched by it):
    known before the process group exists, e.g. to let rank 0 alone print."""
    return int(os.environ.get("RANK", "0")) if launched_by_torchrun() else 0


def init_distributed(device: str) -> tuple[Dist, torch.device]:
    """Join torchrun's process group, if launched by it; the device this process trains on.

    ``device`` as :func:`~alrp_cli.device.resolve_device` reads it (auto, cpu, cuda,
    cuda:N). Under torchrun each process takes ``cuda:LOCAL_RANK`` with NCCL, or the CPU
    with gloo; a device index is then refused (the launcher picks the device).
    """
    dev = resolve_device(device)
    if not launched_by_torchrun():
        return Dist(), dev
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = dev.type == "cuda"
    if use_cuda:
        if dev.index is not None:
            raise UserError(
                f"--device {device}: under torchrun each process takes cuda:LOCAL_RANK; "
                "give --device cuda"
            )
        if local >= torch.cuda.device_count():
            raise UserError(
                f"LOCAL_RANK {local}: only {torch.cuda.device_count()} CUDA devices on this "
                "node; start one process per device (torchrun --nproc_per_node)"
            )
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    backend = "nccl" if use_cuda else "gloo"
    if world > 1 and not tdist.is_initialized():
        tdist.init_process_group(backend, device_id=dev if use_cuda else None)
    return Dist(rank=rank, world_size=world, local_rank=local, backend=backend), dev


class _AllReduceSum(torch.autograd.Function):
    """Sum over the ranks, differentiable: the gradient of a sum is the sum of the ranks'
    incoming gradients (each rank's loss depends on every rank's input)."""

    @staticmethod
    def forward(ctx: Any, t: Tensor) -> Tensor:
        out = t.clone()
        tdist.all_reduce(out, op=tdist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        out = grad.clone()
        tdist.all_reduce(out, op=tdist.ReduceOp.SUM)
        return out


class CpuSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch, computed the
    same way in one process as in several.

    ``torch.nn.SyncBatchNorm`` runs on CUDA only; this is the same computation for gloo:
    per-channel count, sum and sum of squares (float64 sums) are summed over the ranks by a
    differentiable all-reduce, so the forward pass and its gradient equal one process's
    BatchNorm over the concatenated batch. One process (no process group, or a group of
    one) sums nothing and computes the rest the same way: float64 sums of 4 images and of
    2 + 2 differ by float64 rounding, which the float32 statistics drop, so one process at
    batch N·B takes the forward pass of N processes at batch B bit for bit. Torch's kernel
    rounds otherwise (3e-6 apart at the detector's head): enough to move a ReLU input that
    close to 0 to its other side, and the run onto another path (a run resumed on another
    number of processes ended 6e-4 from the one it continued). Input Tensor[B, C, H, W];
    evaluation uses the running statistics, as BatchNorm2d.
    """

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return super().forward(x)
        c, x32 = x.shape[1], x.float()
        local = torch.cat(
            [
                x32.sum((0, 2, 3), dtype=torch.float64),
                x32.square().sum((0, 2, 3), dtype=torch.float64),
                torch.tensor([x.numel() / c], dtype=torch.float64, device=x.device),
            ]
        )
        several = tdist.is_initialized() and tdist.get_world_size() > 1
        total = _AllReduceSum.apply(local) if several else local
        n = total[-1]
        mean = total[:c] / n
        var = (total[c : 2 * c] / n - mean * mean).clamp_min(0)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked += 1
                tracked = int(self.num_batches_tracked)
                m = self.momentum if self.momentum is not None else 1 / tracked
                self.running_mean.mul_(1 - m).add_(m * mean.to(self.running_mean.dtype))
                unbiased = var * n / (n - 1).clamp_min(1)
                self.running_var.mul_(1 - m).add_(m * unbiased.to(self.running_var.dtype))
        scale = torch.rsqrt(var + self.eps)
        if self.affine:
            scale = scale * self.weight
        centred = x32 - mean.float()[None, :, None, None]
        scale32 = scale.float()[None, :, None, None]
        if self.affine:
            return torch.addcmul(self.bias[None, :, None, None], centred, scale32).to(x.dtype)
        return (centred * scale32).to(x.dtype)


def sync_batch_norm(model: nn.Module, device: torch.device) -> nn.Module:
    """Trainable BatchNorm layers of ``model`` made global-batch (SyncBatchNorm on CUDA,
    :class:`CpuSyncBatchNorm` otherwise); frozen BatchNorm is left alone."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d:
            new = CpuSyncBatchNorm(
                child.num_features, child.eps, child.momentum, child.affine,
                child.track_running_stats,
            )  # fmt: skip
            new.load_state_dict(child.state_dict())
            new.train(child.training)
            new.to(next(iter(child.state_dict().values())).device)
            setattr(model, name, new)
        else:
            sync_batch_norm(child, device)
    return model
