"""The one reading of ``--device`` shared by every command: auto, cpu, cuda, cuda:N.

:func:`device_problem` checks the spelling without torch (what a configuration's
validation needs); :func:`resolve_device` turns a name into the device this machine has.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from alrp_cli.errors import UserError

if TYPE_CHECKING:
    import torch

_NAME = re.compile(r"auto|cpu|cuda(:\d+)?")
#: The help of every ``--device`` option.
DEVICE_HELP = "auto (CUDA when available), cpu, cuda, cuda:N."


def device_problem(name: str) -> str | None:
    """What is wrong with the device name ``name`` ('... is not a device'), None when it is
    auto, cpu, cuda or cuda:N."""
    if _NAME.fullmatch(name):
        return None
    return f"{name!r} is not a device (auto, cpu, cuda, cuda:N)"


def resolve_device(name: str, *, option: str = "--device") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cpu``, ``cuda`` and ``cuda:N`` as given.

    Another name, a CUDA device on a machine without one, or an index beyond its devices
    is a :class:`UserError` naming ``option`` and the value.
    """
    import torch

    if device_problem(name) is not None:
        raise UserError(f"{option} {name!r}: not a device (auto, cpu, cuda, cuda:N)")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{option} {name}: no CUDA device is available on this machine")
    count = torch.cuda.device_count()
    if device.type == "cuda" and device.index is not None and device.index >= count:
        raise UserError(f"{option} {name}: this machine has {count} CUDA devices")
    return device
