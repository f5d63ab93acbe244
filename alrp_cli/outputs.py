"""The one way a command opens its outputs: checked before any work, undone on failure.

Every command builds an :class:`Outputs` from the paths it reads, then declares each output
path through :meth:`Outputs.file` or :meth:`Outputs.folder` before it starts working. A
declaration is refused (:class:`~alrp_cli.errors.UserError`, exit 2, one line naming the
path) when the output

- is the same file as an input (compared by inode, so links and ``./`` spellings are caught)
  or an existing file inside an input folder; an input inside a run directory of
  ``alrp train`` (``RUN/last.pt``) makes the whole run directory an input,
- is one of the files a run directory owns (``last.pt``, ``best.pt``, ``config.json``,
  ``metrics.jsonl``, ``loss_inputs.pt``, ``eval/...``), input or not,
- is a folder where a file is meant, or a file where a folder is meant,
- names the same place as another output of the command,
- lies where nothing can be written (a read-only folder, ``/proc``, under a file), found by
  creating and removing a probe file in the nearest existing folder: permission bits alone
  say nothing to root.

Writes themselves go through :mod:`alrp_cli.atomic` (temporary name, then rename), and
:meth:`Outputs.undo_on_error` removes whatever a command created before a later write failed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from alrp_cli.detection.run_dir import enclosing_run_dir, owned_by_run
from alrp_cli.errors import UserError

PathLike = str | os.PathLike[str]


def same_file(a: PathLike, b: PathLike) -> bool:
    """True when ``a`` and ``b`` name one file or folder: same inode when both exist,
    else the same fully resolved path."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _probe_writable(folder: Path, shown: Path, option: str) -> None:
    """Create and remove a file in ``folder``; a UserError naming ``shown`` if that fails."""
    try:
        fd, name = tempfile.mkstemp(prefix=".alrp-probe-", dir=folder)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise UserError(f"{shown}: cannot write {option} there ({folder}: {reason})") from None
    os.close(fd)
    os.unlink(name)


class Outputs:
    """The inputs of one command and the outputs it declared; see the module docstring."""

    def __init__(self, inputs: Iterable[PathLike | None] = ()) -> None:
        self.inputs: list[Path] = []
        self.files: list[tuple[Path, str]] = []
        self.folders: list[tuple[Path, str]] = []
        self.add_inputs(inputs)

    def add_inputs(self, inputs: Iterable[PathLike | None]) -> None:
        """Record more paths the command reads (``None`` entries are skipped); an input
        inside a run directory brings the run directory along."""
        for p in inputs:
            if p is None:
                continue
            self.inputs.append(Path(p))
            run = enclosing_run_dir(p)
            if run is not None and not any(same_file(run, i) for i in self.inputs):
                self.inputs.append(run)

    def _check_not_owned(self, path: Path, option: str) -> None:
        owner = owned_by_run(path)
        if owner is not None:
            run, name = owner
            raise UserError(
                f"{path}: {option} is {name} of the run directory {run}; refusing to overwrite "
                "a run's files"
            )

    def _check_not_input(self, path: Path, option: str) -> None:
        for inp in self.inputs:
            if not inp.exists():
                continue
            if same_file(path, inp):
                kind = "folder" if inp.is_dir() else "file"
                raise UserError(
                    f"{path}: {option} is the input {kind} {inp}; refusing to overwrite an input"
                )
            if inp.is_dir() and path.exists() and _inside(path, inp) and not path.is_dir():
                raise UserError(
                    f"{path}: {option} is a file of the input folder {inp}; "
                    "refusing to overwrite an input"
                )

    def _check_distinct(self, path: Path, option: str) -> None:
        for other, other_option in self.files + self.folders:
            if same_file(path, other):
                raise UserError(f"{path}: {option} and {other_option} name the same place")

    def file(self, path: PathLike | None, option: str) -> Path | None:
        """Declare an output file (``None`` passes through); refuse it as the module says."""
        if path is None:
            return None
        path = Path(path)
        if path.is_dir():
            raise UserError(f"{path}: {option} is a folder; give a file path")
        if path.exists() and not stat.S_ISREG(path.stat().st_mode):
            raise UserError(f"{path}: {option} exists and is not a regular file")
        self._check_not_owned(path, option)
        self._check_not_input(path, option)
        self._check_distinct(path, option)
        parent = _nearest_existing(path.parent)
        if not parent.is_dir():
            raise UserError(f"{path}: cannot write {option} there ({parent} is not a folder)")
        _probe_writable(parent, path, option)
        self.files.append((path, option))
        return path

    def folder(self, path: PathLike | None, option: str) -> Path | None:
        """Declare an output folder (``None`` passes through); refuse it as the module says."""
        if path is None:
            return None
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise UserError(f"{path}: {option} must be a folder, but a file is there")
        self._check_not_owned(path, option)
        self._check_not_input(path, option)
        self._check_distinct(path, option)
        parent = _nearest_existing(path)
        if not parent.is_dir():
            raise UserError(f"{path}: cannot write {option} there ({parent} is not a folder)")
        _probe_writable(parent, path, option)
        self.folders.append((path, option))
        return path

    @contextlib.contextmanager
    def undo_on_error(self) -> Iterator[None]:
        """On an exception inside, remove every declared output file and every entry of a
        declared output folder that was not there when the block started."""
        before: dict[Path, set[str] | None] = {}
        for path, _ in self.files + self.folders:
            if path.exists():
                before[path] = _tree(path) if path.is_dir() else set()
            else:
                before[_new_root(path)] = None
        try:
            yield
        except BaseException as err:
            for path, old in before.items():
                _remove_new(path, old)
            if isinstance(err, OSError) and not isinstance(err, UserError):
                where = f"{err.filename}: " if err.filename else ""
                raise UserError(
                    f"{where}writing the outputs failed ({err.strerror or err}); removed what "
                    "this command had written"
                ) from None
            raise


def _new_root(path: Path) -> Path:
    """The outermost folder a write to ``path`` would create (``path`` itself if none)."""
    path = Path(os.path.abspath(path))
    while not path.parent.exists():
        path = path.parent
    return path


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _remove_new(path: Path, old: set[str] | None) -> None:
    """Remove ``path`` if it is new (``old`` is None), else the entries not in ``old``."""
    with contextlib.suppress(OSError):
        if old is None:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
            return
        if not path.is_dir():
            return
        for rel in sorted(_tree(path) - old, key=len, reverse=True):
            entry = path / rel
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
