"""The collective operations a global ranking needs, as a small injectable interface.

The losses rank over the *global* batch of several processes when given a
:class:`Collective`: an object with the process's ``rank``, the ``world_size`` and two
operations. This package never imports ``torch.distributed``; the caller passes an
implementation (``alrp_cli.detection.collective.TorchDistributedCollective`` for a real
process group, :class:`LocalCollective` for one process, :class:`ThreadedCollective` to
simulate several ranks in one process, in tests).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol, TypeVar, runtime_checkable

from torch import Tensor

T = TypeVar("T")


@runtime_checkable
class Collective(Protocol):
    """What the global-ranking losses need from a process group.

    Every rank must call the same operations in the same order (the losses do: their
    control flow depends only on data every rank has received).

    Attributes:
        rank (int): this process's index, 0 ≤ rank < world_size.
        world_size (int): number of processes.
    """

    rank: int
    world_size: int

    def all_gather(self, tensor: Tensor) -> list[Tensor]:
        """Every rank's ``tensor`` (Tensor[n_r, ...], same dtype and trailing shape on every
        rank; the first dimension may differ), in rank order, on ``tensor``'s device."""
        ...

    def all_reduce_sum(self, tensor: Tensor) -> Tensor:
        """The element-wise sum of ``tensor`` (same shape and dtype on every rank) over the
        ranks; identical on every rank."""
        ...


class LocalCollective:
    """One process: world size 1, every operation the identity (no copy)."""

    rank = 0
    world_size = 1

    def all_gather(self, tensor: Tensor) -> list[Tensor]:
        """[tensor]."""
        return [tensor]

    def all_reduce_sum(self, tensor: Tensor) -> Tensor:
        """tensor."""
        return tensor


class _Rendezvous:
    """Slots and a barrier shared by the ranks of a :class:`ThreadedCollective` group."""

    def __init__(self, world_size: int, timeout: float) -> None:
        self.slots: list[Tensor | None] = [None] * world_size
        self.barrier = threading.Barrier(world_size, timeout=timeout)

    def exchange(self, rank: int, tensor: Tensor) -> list[Tensor]:
        self.slots[rank] = tensor.detach().clone()
        self.barrier.wait()  # every slot written
        out = [t.clone() for t in self.slots]  # type: ignore[union-attr]
        self.barrier.wait()  # every slot read before the next call overwrites it
        return out


class ThreadedCollective:
    """One rank of a group simulated by threads of this process (for tests).

    Build a group with :meth:`group` and run one thread per rank, or use :func:`run_ranks`.
    ``all_reduce_sum`` adds in rank order, so every rank gets the bit-identical result, as
    the ring all-reduce of NCCL and gloo gives. ``bytes_sent`` counts the bytes of the
    tensors this rank passed in (what a real backend would have to send at least once).
    """

    def __init__(self, rendezvous: _Rendezvous, rank: int) -> None:
        self._rendezvous = rendezvous
        self.rank = rank
        self.world_size = len(rendezvous.slots)
        self.bytes_sent = 0
        self.num_calls = 0

    @classmethod
    def group(cls, world_size: int, *, timeout: float = 300.0) -> list[ThreadedCollective]:
        """One collective per rank, sharing a rendezvous; ``timeout`` (s) stops a hung rank."""
        if world_size < 1:
            raise ValueError(f"world_size must be >= 1, got {world_size}")
        rendezvous = _Rendezvous(world_size, timeout)
        return [cls(rendezvous, rank) for rank in range(world_size)]

    def _count(self, tensor: Tensor) -> None:
        self.bytes_sent += tensor.numel() * tensor.element_size()
        self.num_calls += 1

    def all_gather(self, tensor: Tensor) -> list[Tensor]:
        """Every rank's tensor, in rank order (see :class:`Collective`)."""
        self._count(tensor)
        return [t.to(tensor.device) for t in self._rendezvous.exchange(self.rank, tensor)]

    def all_reduce_sum(self, tensor: Tensor) -> Tensor:
        """Sum over the ranks, added in rank order (see :class:`Collective`)."""
        self._count(tensor)
        parts = self._rendezvous.exchange(self.rank, tensor)
        total = parts[0].to(tensor.device)
        for part in parts[1:]:
            if part.shape != total.shape or part.dtype != total.dtype:
                raise ValueError(
                    f"all_reduce_sum: rank shapes differ ({tuple(total.shape)} {total.dtype} "
                    f"vs {tuple(part.shape)} {part.dtype})"
                )
            total = total + part.to(tensor.device)
        return total

    def abort(self) -> None:
        """Release the other ranks waiting in a collective (they raise BrokenBarrierError)."""
        self._rendezvous.barrier.abort()


def run_ranks(world_size: int, fn: Callable[[ThreadedCollective], T]) -> list[T]:
    """Run ``fn(collective)`` for every rank of a simulated group, one thread each.

    Returns the results in rank order. If a rank raises, the others are released and the
    first exception (in rank order, a rank's own error before the broken barriers it
    caused) is re-raised here.
    """
    group = ThreadedCollective.group(world_size)
    results: list[object] = [None] * world_size
    errors: list[BaseException | None] = [None] * world_size

    def target(c: ThreadedCollective) -> None:
        try:
            results[c.rank] = fn(c)
        except BaseException as exc:  # re-raised in the calling thread
            errors[c.rank] = exc
            c.abort()

    threads = [threading.Thread(target=target, args=(c,)) for c in group]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    own = [e for e in errors if e is not None and not isinstance(e, threading.BrokenBarrierError)]
    first = own or [e for e in errors if e is not None]
    if first:
        raise first[0]
    return results  # type: ignore[return-value]


__all__ = ["Collective", "LocalCollective", "ThreadedCollective", "run_ranks"]
