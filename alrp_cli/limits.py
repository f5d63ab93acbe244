"""Option values beyond what this machine has, refused before any work.

``--workers`` and ``--threads`` are bounded per CPU core (:func:`check_per_core`). An
option that sizes an allocation (the examples of ``bench --size``, ``check-balance
--max-negatives``, ``data synth --image-size``, ``train --head-channels``) is checked with
:func:`check_fits`: a lower estimate of what the work allocates against the memory of the
device it runs on. A value beyond either is a :class:`~alrp_cli.errors.UserError` that
names the option and the limit, instead of a ``MemoryError``, the kernel's OOM killer or a
million processes later. The estimates are low on purpose: they refuse what can never fit,
not what might not.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alrp_cli.errors import UserError

#: The largest ``--seed`` of every command: numpy's and torch's seed range is 0..2**32 - 1.
SEED_MAX = 2**32 - 1
#: Bytes per example that the loss kernels hold at their peak, inputs included: measured
#: at most 75 (check-balance, float64 draws cast to float32) and 52 (bench, float32) on CPU.
LOSS_BYTES_PER_EXAMPLE = 64


def host_memory() -> int:
    """Bytes of memory this process may use: the machine's, or a smaller cgroup limit."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return total
    return min(total, int(limit)) if limit.isdigit() else total


def device_memory(device: Any = None) -> int:
    """Bytes of memory of ``device`` (a torch device or its name): a GPU's own, else the
    host's (:func:`host_memory`)."""
    if device is not None and str(device).startswith("cuda"):
        import torch

        return int(torch.cuda.get_device_properties(torch.device(device)).total_memory)
    return host_memory()


def cpu_count() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


PER_CORE = 4
"""``--workers`` and ``--threads`` take at most this many per CPU core: more only slows the
run, and a typo's million would start a million processes or threads."""


def check_per_core(value: int, option: str, *, what: str) -> None:
    """Raise :class:`UserError` when ``value`` ``what`` ("worker processes") exceed
    :data:`PER_CORE` per CPU core."""
    cores = cpu_count()
    if value > PER_CORE * cores:
        raise UserError(
            f"{option} {value}: at most {PER_CORE * cores} {what} ({PER_CORE} per CPU core; "
            f"this machine has {cores})"
        )


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units: ``512 B``, ``3.0 GiB``, ``7.3 TiB``, ``4,096 PiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:,.0f} {unit}" if unit == "B" or n >= 100 else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


def check_fits(needed: float, option: str, *, what: str, device: Any = None) -> None:
    """Raise :class:`UserError` naming ``option`` when ``needed`` bytes (``what`` needs
    them, e.g. "2 × 10¹² examples") exceed the memory of ``device`` (default: the host)."""
    have = device_memory(device)
    if needed > have:
        gpu = device is not None and str(device).startswith("cuda")
        raise UserError(
            f"{option}: {what} would need at least {format_bytes(needed)} of memory, more "
            f"than {'this GPU' if gpu else 'this machine'}'s {format_bytes(have)}"
        )
