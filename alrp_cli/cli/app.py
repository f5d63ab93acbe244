"""The Typer application: global options, error mapping, and the one place commands register.

Commands live one per module in this package; each module exposes a function that
:func:`_register` adds to the app. Library errors become exit codes here:
:class:`~alrp_cli.errors.UserError` -> 2 with a one-line message on stderr,
:class:`~alrp_cli.errors.CheckFailed` -> 1.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.core import TyperGroup

from alrp_cli import __version__
from alrp_cli.errors import AlrpError


def one_line(message: str) -> str:
    """Collapse a message to a single line (users read it; scripts grep it)."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


class AlrpGroup(TyperGroup):
    """A Typer group that turns the project's errors into exit codes, never a traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except AlrpError as err:
            text = one_line(str(err)) or type(err).__name__
            typer.echo(f"Error: {text}", err=True)
            raise typer.Exit(err.exit_code) from None


app = typer.Typer(
    cls=AlrpGroup,
    name="alrp",
    help="Ranking-based object-detection losses: aLRP Loss and AP Loss, exact and fast.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"alrp {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Ranking-based object-detection losses: aLRP Loss and AP Loss, exact and fast."""


def _register() -> None:
    # The one place commands are registered; each issue adds its command here.
    from alrp_cli.cli import check_balance

    app.command("check-balance")(check_balance.check_balance_command)
    from alrp_cli.cli.data import data_app

    app.add_typer(data_app, name="data")
    from alrp_cli.cli import predict, train

    app.command("train")(train.train)
    app.command("predict")(predict.predict)
    from alrp_cli.cli import report

    app.command("report")(report.report)
    from alrp_cli.cli import analyze

    app.command("analyze")(analyze.analyze)
    from alrp_cli.cli import bench

    app.command("bench")(bench.bench)


_register()


def main() -> None:
    """Console-script entry point of `alrp`."""
    app(prog_name="alrp")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
