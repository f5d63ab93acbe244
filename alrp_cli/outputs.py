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

A path the operating system refuses (a name longer than 255 bytes, a NUL byte), and a file
output typed with a trailing ``/``, are refused too. ``-`` means standard output for the
outputs declared with ``stdout=True`` (the ``--json`` summaries: :func:`write_json_output`
prints them) and is refused for every other output; ``./-`` is the file named ``-``. The CLI
tells this module what was typed (:func:`note_typed_path`): ``Path()`` forgets a trailing
``/`` and reads ``./-`` as ``-``.

Writes themselves go through :mod:`alrp_cli.atomic` (temporary name, then rename), and
:meth:`Outputs.undo_on_error` removes whatever a command created before a later write failed.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from alrp_cli.atomic import json_text, write_json
from alrp_cli.errors import UserError
from alrp_cli.run_dir import enclosing_run_dir, owned_by_run

PathLike = str | os.PathLike[str]
STDOUT = "-"
_TYPED: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "alrp_typed_paths", default=None
)


def begin_typed_paths() -> None:
    """Start recording what the user types for paths (once per command line)."""
    _TYPED.set({})


def note_typed_path(text: str) -> None:
    """Record ``text`` as typed for the path ``Path(text)``: the CLI calls this for every
    path option, before ``Path()`` drops a trailing ``/`` or turns ``./-`` into ``-``."""
    typed = _TYPED.get()
    if typed is not None:
        typed[str(Path(text))] = text


def _typed(path: Path) -> str | None:
    typed = _TYPED.get()
    return None if typed is None else typed.get(str(path))


def write_json_output(path: PathLike, obj: Any) -> None:
    """Write ``obj`` as JSON to the file ``path`` (atomically), or to standard output when
    ``path`` is ``-`` (as :meth:`Outputs.file` returns it for ``stdout=True``)."""
    if str(path) == STDOUT:
        sys.stdout.write(json_text(obj))
        sys.stdout.flush()
    else:
        write_json(path, obj)


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):  # a name too long, a NUL byte: nothing of the user's there
        return False


def _check_name(path: Path, option: str) -> None:
    """A UserError naming ``option`` for a path the operating system refuses: a NUL byte, a
    name longer than the filesystem allows, a whole path longer than the system allows."""
    if "\0" in str(path):
        raise UserError(f"{path!s:.80}: {option} holds a NUL byte, which no file name can")
    name_max, path_max = 255, 4096
    with contextlib.suppress(OSError, ValueError):
        name_max = os.pathconf("/", "PC_NAME_MAX")
        path_max = os.pathconf("/", "PC_PATH_MAX")
    for part in Path(os.path.abspath(path)).parts:
        size = len(os.fsencode(part))
        if size > name_max:
            raise UserError(
                f"{path}: {option}: the name {part[:16]!r}... is {size} bytes long, more than "
                f"the {name_max} a file name may have"
            )
    size = len(os.fsencode(os.path.abspath(path)))
    if size >= path_max:
        raise UserError(
            f"{path!s:.80}...: {option} is {size} bytes long, more than the {path_max - 1} a "
            "path may have"
        )


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
            name = owner[1]
            run = path
            for _ in Path(name).parts:  # the run directory as the user spelled the path
                run = run.parent
            raise UserError(
                f"{path}: {option} is {name} of the run directory {run}; refusing to overwrite "
                "a run's files"
            )

    def _check_not_input(self, path: Path, option: str) -> None:
        for inp in self.inputs:
            if not _exists(inp):
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
            if str(other) != STDOUT and same_file(path, other):
                raise UserError(f"{path}: {option} and {other_option} name the same place")

    def file(self, path: PathLike | None, option: str, *, stdout: bool = False) -> Path | None:
        """Declare an output file (``None`` passes through); refuse it as the module says.

        Returns the path to write: ``-`` (standard output) only with ``stdout``; the file
        named ``-`` typed as ``./-`` comes back as an absolute path.
        """
        if path is None:
            return None
        path = Path(path)
        typed = _typed(path)
        if str(path) == STDOUT:
            if typed in (None, STDOUT):
                return self._stdout(option, allowed=stdout)
            path = Path.cwd() / STDOUT  # typed ./-: the file named -
        if typed is not None and typed.endswith("/"):
            raise UserError(
                f"{typed}: {option} names a file, but ends in '/'; give the file's name without it"
            )
        _check_name(path, option)
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

    def _stdout(self, option: str, *, allowed: bool) -> Path:
        if not allowed:
            raise UserError(
                f"-: {option} cannot be standard output; give a file name (./- for a file named -)"
            )
        for other, other_option in self.files:
            if str(other) == STDOUT:
                raise UserError(f"-: {option} and {other_option} name the same place")
        self.files.append((Path(STDOUT), option))
        return Path(STDOUT)

    def folder(self, path: PathLike | None, option: str) -> Path | None:
        """Declare an output folder (``None`` passes through); refuse it as the module says."""
        if path is None:
            return None
        path = Path(path)
        if str(path) == STDOUT and _typed(path) in (None, STDOUT):
            raise UserError(
                f"-: {option} is a folder, and standard output cannot be one; give a folder "
                "name (./- for a folder named -)"
            )
        _check_name(path, option)
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
            if str(path) == STDOUT:
                continue
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
