"""The CLI skeleton: help, version, and the error-to-exit-code mechanism."""

from __future__ import annotations

import subprocess
import sys

import typer
from typer.testing import CliRunner

from alrp_cli import __version__
from alrp_cli.cli.app import AlrpGroup, app
from alrp_cli.errors import CheckFailed, UserError

runner = CliRunner()


def test_help_lists_the_app() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "aLRP" in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"alrp {__version__}"


def _toy_app() -> typer.Typer:
    toy = typer.Typer(cls=AlrpGroup)

    @toy.command()
    def bad(kind: str) -> None:
        if kind == "user":
            raise UserError("data.json: record 3: bbox has a negative width\nsecond line")
        if kind == "check":
            raise CheckFailed("balance did not hold in trial 7")
        if kind == "bug":
            raise RuntimeError("a real bug")

    @toy.command()
    def good() -> None:
        typer.echo("fine")

    return toy


def test_user_error_is_one_line_exit_2_without_traceback() -> None:
    result = runner.invoke(_toy_app(), ["bad", "user"])
    assert result.exit_code == 2
    assert result.stderr == "Error: data.json: record 3: bbox has a negative width second line\n"
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_check_failed_is_exit_1() -> None:
    result = runner.invoke(_toy_app(), ["bad", "check"])
    assert result.exit_code == 1
    assert "trial 7" in result.stderr


def test_programming_errors_are_not_swallowed() -> None:
    result = runner.invoke(_toy_app(), ["bad", "bug"])
    assert result.exit_code == 1
    assert isinstance(result.exception, RuntimeError)


def test_python_dash_m_runs_the_cli() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "alrp_cli", "--version"], capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip() == f"alrp {__version__}"


def test_help_in_a_terminal_keeps_bracketed_preset_defaults() -> None:
    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    for shown in ("[synthetic: 128; COCO: 512]", "[synthetic: 100; COCO: 500]", "[runs/"):
        assert shown in text, shown
