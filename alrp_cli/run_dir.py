"""The one way to open a run directory: created exclusively, resumed only from a checkpoint.

A new run claims its folder atomically: the folder is made with ``mkdir`` (which fails when it
exists) or, for an existing empty folder, by creating ``config.json`` with ``O_EXCL``; two
runs started at once can never share one. A folder that holds anything else is refused,
whether or not it looks like a run: a crash in epoch 1 leaves ``config.json`` and
``metrics.jsonl`` without ``last.pt``, and that is still someone's data.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from alrp_cli.errors import UserError

CHECKPOINT = "last.pt"
CLAIM = "config.json"
MAX_SUFFIX = 1000
OWNED = (CLAIM, "metrics.jsonl", CHECKPOINT, "best.pt", "loss_inputs.pt", "eval")
"""What a run directory's files are called (``eval`` with everything under it): the run's
own data, which no command's output may replace."""


def is_run_dir(folder: str | os.PathLike[str]) -> bool:
    """True for a folder that ``alrp train`` made: ``config.json`` with ``metrics.jsonl``
    or ``last.pt`` beside it."""
    folder = Path(folder)
    return (folder / CLAIM).is_file() and any(
        (folder / name).is_file() for name in ("metrics.jsonl", CHECKPOINT)
    )


def enclosing_run_dir(path: str | os.PathLike[str]) -> Path | None:
    """The run directory that holds ``path`` at any depth (``path`` itself excluded), or
    None. The path need not exist."""
    for folder in Path(os.path.abspath(path)).parents:
        if is_run_dir(folder):
            return folder
    return None


def owned_by_run(path: str | os.PathLike[str]) -> tuple[Path, str] | None:
    """``(run directory, name in it)`` when ``path`` is one of a run's own files or folders
    (:data:`OWNED`, or anything under ``eval/``), else None."""
    run = enclosing_run_dir(path)
    if run is None:
        return None
    rel = Path(os.path.abspath(path)).relative_to(run)
    return (run, str(rel)) if rel.parts[0] in OWNED else None


def default_run_dir(loss: str) -> Path:
    """``runs/<UTC timestamp>-<loss>`` (a suffix ``-2``, ``-3``... is added when taken)."""
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{loss}"


def _claim(folder: Path) -> bool:
    """Create ``folder/config.json`` exclusively (an empty placeholder the run overwrites)."""
    try:
        fd = os.open(folder / CLAIM, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def _refuse_existing(folder: Path) -> None:
    if (folder / CHECKPOINT).exists():
        raise UserError(f"{folder}: holds a run already; use --resume {folder} or a new --out")
    raise UserError(
        f"{folder}: --out is not empty and holds no resumable run (no {CHECKPOINT}); "
        "choose a new --out, or remove the folder yourself"
    )


def check_new_run_dir(out: str | os.PathLike[str] | None) -> None:
    """Raise :class:`UserError` now if ``out`` cannot become a new run directory (a file, a
    non-empty folder); :func:`create_run_dir` claims it later, once the inputs are checked."""
    if out is None:
        return
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder}: --out must be a folder, but a file is there")
    if folder.is_dir() and any(folder.iterdir()):
        _refuse_existing(folder)


def create_run_dir(out: str | os.PathLike[str] | None, loss: str) -> Path:
    """Create and claim a new run directory: ``out``, or the default with a free suffix.

    Raises :class:`UserError` when ``out`` is a file or a non-empty folder.
    """
    if out is None:
        base = default_run_dir(loss)
        try:
            base.parent.mkdir(parents=True, exist_ok=True)
            for k in range(1, MAX_SUFFIX + 1):
                candidate = base if k == 1 else base.with_name(f"{base.name}-{k}")
                try:
                    candidate.mkdir()
                except FileExistsError:
                    continue
                if _claim(candidate):
                    return candidate
        except OSError as err:  # a read-only working directory
            raise UserError(
                f"{base.parent}: cannot create the default run directory there "
                f"({err.strerror or err}); give --out"
            ) from None
        raise UserError(f"{base}: {MAX_SUFFIX} runs of this second exist already; give --out")
    check_new_run_dir(out)
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"{folder}: cannot create the run directory ({err.strerror})") from None
    if any(folder.iterdir()) or not _claim(folder):
        _refuse_existing(folder)
    return folder


def resume_checkpoint(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``(run directory, checkpoint)`` for ``--resume``: a run folder (its ``last.pt``) or
    a checkpoint file inside one. Raises :class:`UserError` saying why it cannot resume."""
    path = Path(path)
    if path.is_file():
        return path.parent, path
    if not path.exists():
        raise UserError(f"{path}: no such run directory to resume")
    checkpoint = path / CHECKPOINT
    if checkpoint.is_file():
        return path, checkpoint
    if (path / CLAIM).exists():
        raise UserError(
            f"{path}: the run stopped before its first checkpoint ({CHECKPOINT}); nothing to "
            "resume, start a new run with a new --out"
        )
    raise UserError(f"{path}: not a run directory (no {CHECKPOINT})")
