"""Option conventions shared by every command, so that one spelling means the same everywhere.

- ``--out`` names a folder, ``-o/--output`` a file;
- every ``--seed`` takes 0..SEED_MAX; every ``--device`` defaults to ``auto``.
"""

from __future__ import annotations

from typing import TypeVar

import typer

from alrp_cli.errors import UserError

SEED_MAX = 2**32 - 1  # numpy's and torch's seed range; every --seed is 0..SEED_MAX

T = TypeVar("T")


def renamed(new: T | None, old: T | None, *, new_name: str, old_name: str) -> T | None:
    """The value of an option renamed in this release, given under its new or old spelling.

    The old spelling still works for one release, with a deprecation line on stderr; both at
    once is a :class:`UserError`.
    """
    if old is None:
        return new
    if new is not None:
        raise UserError(f"{old_name} is the old spelling of {new_name}; give {new_name} only")
    typer.echo(
        f"warning: {old_name} is deprecated here and goes in the next release; use {new_name}",
        err=True,
    )
    return old
