"""Reading ``.pt`` files: the one way this project calls ``torch.load`` on a user's file."""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from alrp_cli.errors import UserError

# torch.save writes a zip archive (b"PK..."); before torch 1.6 it wrote a pickle that starts
# with a magic number (protocol 2, a 10-byte long): the released mmdetection 2.x models
LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


def read_torch_file(path: str | os.PathLike[str], what: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU with one-line UserErrors; the zip
    format and the format before torch 1.6.

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
    if head[:2] != b"PK" and head != LEGACY_MAGIC[:4]:
        raise UserError(f"{path}: not a PyTorch file (torch.save's format), expected a {what}")
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
