"""docs/cli.md must equal the help generated from the Typer app."""

from __future__ import annotations

from alrp_cli.cli.gendocs import generate_cli_docs
from tests.helpers.paths import REPO


def test_cli_reference_is_up_to_date() -> None:
    on_disk = (REPO / "docs" / "cli.md").read_text()
    assert on_disk == generate_cli_docs(), (
        "docs/cli.md is stale: regenerate it with `make docs` "
        "(or `python -m alrp_cli.cli.gendocs docs/cli.md`)"
    )
