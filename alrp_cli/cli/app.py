"""The Typer application: global options, error mapping, and the one place commands register.

Commands live one per module in this package; each module exposes a function that
:func:`_register` adds to the app. A command module imports only typer, rich and light
project modules at its top (its option declarations need nothing more); its library is
imported inside the command function, so that the command tree, ``--help``, ``--version``
and option errors cost no torch, torchvision, pandas or scipy (tests/cli/test_startup.py
checks which heavy modules each command loads). Library errors become exit codes here:
:class:`~alrp_cli.errors.UserError` -> 2 with a one-line message on stderr,
:class:`~alrp_cli.errors.CheckFailed` -> 1.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import typing
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from alrp_cli import __version__
from alrp_cli.errors import AlrpError
from alrp_cli.outputs import begin_typed_paths, note_typed_path


def one_line(message: str) -> str:
    """Collapse a message to a single line (users read it; scripts grep it)."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def _click_exceptions() -> Any:
    try:  # typer >= 0.20 ships its own copy of click
        from typer._click import exceptions
    except ImportError:  # pragma: no cover - older typer depends on click
        from click import exceptions
    return exceptions


def _finite(callback: Any) -> Any:
    """Wrap a parameter callback so that NaN and infinities are refused for every option."""

    def check(ctx: Any, param: Any, value: Any) -> Any:
        for v in value if isinstance(value, list | tuple) else (value,):
            if isinstance(v, float) and not math.isfinite(v):
                raise _click_exceptions().BadParameter(
                    f"{v} is not a finite number", ctx=ctx, param=param
                )
        return callback(ctx, param, value) if callback is not None else value

    return check


def _takes_paths(annotation: Any) -> bool:
    return annotation is Path or any(_takes_paths(a) for a in typing.get_args(annotation))


def _noting_typed_paths(process_value: Any) -> Any:
    """Wrap a path parameter's processing so that the text typed reaches
    :func:`~alrp_cli.outputs.note_typed_path` before ``Path()`` normalises it."""

    def process(ctx: Any, value: Any) -> Any:
        for v in value if isinstance(value, list | tuple) else (value,):
            if isinstance(v, str):
                note_typed_path(v)
        return process_value(ctx, value)

    return process


def _help_on_stderr(parse_args: Any) -> Any:
    """A group called without arguments shows its help and exits 2, Click's convention for
    ``no_args_is_help``: the help is then an error message, so it goes to stderr (Typer's
    Rich help would print it on stdout)."""

    def parse(ctx: Any, args: list[str]) -> Any:
        if args:
            return parse_args(ctx, args)
        with contextlib.redirect_stdout(sys.stderr):
            return parse_args(ctx, args)

    return parse


def _prepare(command: Any) -> None:
    """Once per command tree: refuse non-finite numbers in every option, note what is typed
    for every path, and escape option help for Rich, which would take "[synthetic: 8,
    COCO: 100]" for a markup tag and drop it from the terminal's help (docs/cli.md,
    generated from the raw text, never lost it)."""
    if getattr(command, "alrp_prepared", False):
        return
    command.alrp_prepared = True
    if hasattr(command, "commands"):
        command.parse_args = _help_on_stderr(command.parse_args)
    for param in command.params:
        param.callback = _finite(param.callback)
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is not None and _takes_paths(descriptor.annotation):
            param.process_value = _noting_typed_paths(param.process_value)
        if getattr(param, "help", None):
            param.help = escape(param.help)
    for sub in getattr(command, "commands", {}).values():
        _prepare(sub)


def _closed_pipe(*_: Any) -> None:
    """`alrp analyze ... | head`: the reader has what it wanted, which is a success. Point
    stdout at /dev/null so that the interpreter's last flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise typer.Exit(0)


class AlrpGroup(TyperGroup):
    """A Typer group that turns every error into an exit code and one line, never a
    traceback: the project's errors (2 for a user's mistake, 1 for a failed check), option
    errors (2, "Error: ..." naming the option), and a closed pipe (0, quietly)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except AlrpError as err:
            text = one_line(str(err)) or type(err).__name__
            typer.echo(f"Error: {text}", err=True)
            raise typer.Exit(err.exit_code) from None
        except BrokenPipeError:
            _closed_pipe()

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        _prepare(self)
        begin_typed_paths()
        # Rich's consoles exit 1 on a closed pipe by default; for this CLI it is a success.
        Console.on_broken_pipe = _closed_pipe  # type: ignore[method-assign]
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        exceptions = _click_exceptions()
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except exceptions.NoArgsIsHelpError as err:
            if err.format_message().strip():  # plain help; Rich's is printed already
                err.show()
            sys.exit(err.exit_code)
        except exceptions.ClickException as err:
            text = one_line(err.format_message())
            ctx = getattr(err, "ctx", None)
            if isinstance(err, exceptions.UsageError) and ctx is not None:
                text += f" (see '{ctx.command_path} --help')"
            typer.echo(f"Error: {text}", err=True)
            sys.exit(err.exit_code)
        except typer.Abort:
            typer.echo("Aborted.", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


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
    from alrp_cli.cli import import_

    app.command("import")(import_.import_command)
    from alrp_cli.cli import report

    app.command("report")(report.report)
    from alrp_cli.cli import analyze

    app.command("analyze")(analyze.analyze)
    from alrp_cli.cli import bench

    app.command("bench")(bench.bench)


_register()


def command_paths() -> list[list[str]]:
    """The path of every command and command group of ``alrp`` (e.g. ``["data", "synth"]``),
    in alphabetical order, from the command tree itself: what the start-up test and
    benchmark run one by one."""
    found: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            found.append([*path, name])
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


def main() -> None:
    """Console-script entry point of `alrp`."""
    app(prog_name="alrp")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
