"""Checkpoints: model, optimizer, scheduler, loss state, RNG states, position — atomically.

Everything saved is a tensor, dict, list, number or string, so checkpoints load with
``torch.load(..., weights_only=True)``: RNG states are stored as tensors.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from alrp_cli.atomic import atomic_path
from alrp_cli.errors import UserError
from alrp_cli.torchfile import read_torch_file

FORMAT_VERSION = 1


def rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy and Python RNG states as tensors."""
    py = random.getstate()
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python_version": int(py[0]),
        "python": torch.tensor(py[1], dtype=torch.int64),
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_has_gauss": int(np_state[3]),
        "numpy_gauss": float(np_state[4]),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    random.setstate((state["python_version"], tuple(state["python"].tolist()), None))
    np.random.set_state(
        (
            "MT19937",
            state["numpy_keys"].numpy().astype(np.uint32),
            state["numpy_pos"],
            state["numpy_has_gauss"],
            state["numpy_gauss"],
        )
    )
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (plus RNG states and the format version) atomically to ``path``."""
    payload = {"version": FORMAT_VERSION, "rng": rng_state(), **state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def checkpoint_file(path: str | Path, *, prefer: str = "best.pt") -> Path:
    """The checkpoint ``path`` names: the file itself, or in a run directory ``prefer``
    (``best.pt`` by default), else its ``last.pt``. A UserError when there is none."""
    path = Path(path)
    if path.is_dir():
        for name in dict.fromkeys((prefer, "last.pt")):
            if (path / name).is_file():
                return path / name
        raise UserError(f"{path}: a folder without a checkpoint (no best.pt or last.pt)")
    if not path.exists():
        raise UserError(f"{path}: no such checkpoint file")
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint (a file, or a run directory's best.pt / last.pt) weights-only;
    a missing, empty, foreign or damaged file is a UserError."""
    path = checkpoint_file(path)
    state = read_torch_file(path, "checkpoint")
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise UserError(f"{path}: not an alrp checkpoint (no model/config entries)")
    return state


def state_mismatch(
    expected: Mapping[str, torch.Size],
    given: Mapping[str, Tensor],
    *,
    optional: Callable[[str], bool] = lambda key: False,
    extra: str = "unexpected",
) -> str | None:
    """How ``given`` tensors differ from the ``expected`` names and shapes (``optional``
    names may be missing), as "2 missing: a, b; 1 unexpected: c" naming up to 3 of each;
    None when they fit."""
    missing = [k for k in expected if k not in given and not optional(k)]
    unknown = [k for k in given if k not in expected]
    shapes = [
        f"{k} {list(given[k].shape)}, expected {list(expected[k])}"
        for k in expected
        if k in given and given[k].shape != expected[k]
    ]
    parts = [
        f"{len(keys)} {what}: {', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''}"
        for keys, what in ((missing, "missing"), (unknown, extra), (shapes, "of another shape"))
        if keys
    ]
    return "; ".join(parts) or None


def load_weights(model: nn.Module, weights: dict[str, Tensor], path: str | Path) -> None:
    """``model.load_state_dict(weights)``; a mismatch is a UserError that names it (a config
    that does not describe these weights, e.g. another backbone)."""
    own = model.state_dict()
    problem = state_mismatch({k: v.shape for k, v in own.items()}, weights)
    if problem:
        raise UserError(
            f"{path}: the weights do not match the model its config describes: {problem}"
        )
    model.load_state_dict(weights)
