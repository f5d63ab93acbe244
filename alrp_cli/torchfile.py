"""Reading ``.pt`` files: the one way this project calls ``torch.load`` on a user's file."""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from alrp_cli.errors import UserError


def read_torch_file(path: str | os.PathLike[str], what: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU with one-line UserErrors.

    The one way this project reads a ``.pt`` file (checkpoints, recorded loss inputs). It
    never suggests ``weights_only=False``: a file that needs it is refused.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(4)
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, expected a {what} file") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read the {what} ({err.strerror or err})") from None
    if size == 0:
        raise UserError(f"{path}: empty file, expected a {what}")
    if head[:2] != b"PK":  # torch.save writes a zip archive
        raise UserError(f"{path}: not a PyTorch file (torch.save's zip format), expected a {what}")
    try:
        with warnings.catch_warnings():  # torch warns about odd pickles; the error says it all
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UserError(
            f"{path}: holds objects other than tensors and plain values; alrp reads only "
            f"weights-only {what} files"
        ) from None
    except Exception:  # torch raises several types for a damaged archive
        raise UserError(f"{path}: damaged or truncated PyTorch file, expected a {what}") from None
