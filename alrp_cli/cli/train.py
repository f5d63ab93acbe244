"""``alrp train``: options made from the configuration's declaration
(:mod:`alrp_cli.config.training`), one call of :func:`alrp_cli.detection.launch.run_training`,
and its progress drawn in the one progress style."""

from __future__ import annotations

import inspect
import json
import sys
import typing
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from alrp_cli.cli.options import JSON_HELP, table_console
from alrp_cli.cli.progress import progress_bar
from alrp_cli.config.presets import PRESETS
from alrp_cli.config.settings import option_flag, option_help
from alrp_cli.config.training import FIELDS, Field, TrainConfig
from alrp_cli.outputs import Outputs, write_json_output

#: The help panel of each configuration group.
PANELS = {
    "data": "Data",
    "model": "Model",
    "optim": "Optimisation",
    "eval": "Evaluation",
    "runtime": "Runtime",
}


class _ProgressView:
    """Draws training events as a Rich progress display on stderr."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = progress_bar(console, transient=False)
        self.train_task: Any = None
        self.scan_task: Any = None
        self.run_dir: str | None = None
        self.warnings: list[str] = []
        self.eval_task: Any = None
        self.epochs = 0

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "message":
            self.console.print(event["text"])
        elif kind == "complete":  # a resumed run with nothing to do: no "start" follows
            self.say_warnings()
            self.console.print(event["text"])
        elif kind == "scan_start":
            self.progress.start()
            self.scan_task = self.progress.add_task(
                f"check {event['split']} images", total=event["images"], info=""
            )
        elif kind == "scan":
            self.progress.update(self.scan_task, advance=1)
        elif kind == "scan_end":
            self.progress.remove_task(self.scan_task)
        elif kind == "start":
            self.epochs = event["epochs"]
            self.run_dir = event["run_dir"]
            self.say_warnings()
            world = event.get("world_size", 1)
            self.console.print(
                f"run directory: {event['run_dir']} (device {event['device']}"
                + (f", {world} processes" if world > 1 else "")
                + ")"
            )
            self.progress.start()
            self.train_task = self.progress.add_task(
                "train", total=event["total_iters"], completed=event["start_iter"], info=""
            )
        elif kind in ("tick", "step"):
            w = event["sb_weight"]
            info = (
                f"ep {event['epoch']}/{self.epochs} loss {event['loss']:.3f} "
                f"cls {event['cls']:.3f} loc {event['loc']:.3f}"
                + (f" w {w:.1f}" if w is not None else "")
                + f" lr {event['lr']:.2e} {event.get('images_per_s', 0.0):.1f} img/s"
            )
            self.progress.update(self.train_task, advance=1, info=info)
        elif kind == "eval_start":
            self.eval_task = self.progress.add_task("eval", total=event["images"], info="")
        elif kind == "eval_batch":
            self.progress.update(self.eval_task, advance=event["images"])
        elif kind == "eval":
            self.progress.remove_task(self.eval_task)
            molrp = event.get("moLRP")
            self.progress.console.print(
                f"epoch {event['epoch']}: AP {_num(event['AP'])} AP50 {_num(event['AP50'])}"
                + (f" moLRP {molrp:.4f}" if molrp is not None else "")
            )

    def say_warnings(self) -> None:
        """Print the warnings once the run is known to start (or known to be complete)."""
        for text in self.warnings:
            self.console.print(f"[yellow]warning:[/] {text}", highlight=False)
        self.warnings = []

    def stop(self) -> None:
        if not self.progress.live.is_started:
            return
        if self.progress.tasks:
            self.progress.stop()
        else:  # nothing to leave (an error right after the image check): no blank line
            self.progress.live.transient = True
            self.progress.live.stop()


def _num(value: float | None) -> str:
    """A metric to 4 decimals; "–" when undefined (None: e.g. no ground truth to evaluate)."""
    return "–" if value is None else f"{value:.4f}"


def _summary_table(result: Any) -> Table:
    table = Table(title=f"alrp train: {result.run_dir}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("epochs", str(result.epochs_done))
    table.add_row("iterations", str(result.global_iter))
    table.add_row("seconds", f"{result.seconds:.1f}")
    if result.last_eval:
        for key in ("AP", "AP50", "AP75", "APs", "APm", "APl", "moLRP"):
            value = result.last_eval.get(key)
            table.add_row(key, "-" if value is None else f"{value:.4f}")
    if result.best_ap is not None:
        table.add_row("best AP", f"{result.best_ap:.4f}")
    return table


def _ignored_with_resume(ctx: typer.Context) -> list[str]:
    """The options typed on the command line that ``--resume`` ignores (it keeps config.json)."""
    kept = {"resume", "json_path", "nproc"}  # --nproc starts the processes
    names = []
    for param in ctx.command.params:
        if param.name in kept or param.name is None:
            continue
        source = ctx.get_parameter_source(param.name)
        if getattr(source, "name", None) == "COMMANDLINE":
            names.append(param.opts[0])
    return names


def option_type(f: Field) -> Any:
    """The type ``alrp train`` parses the option of field ``f`` as: the text of a list
    option, ``Path`` for a path, else the field's own type (optional when unset)."""
    s = f.setting
    if s.parse is not None:
        kind: Any = str
    elif s.path:
        kind = Path
    else:
        kind = next(
            a for a in typing.get_args(f.annotation) or (f.annotation,) if a is not type(None)
        )
    return typing.Optional[kind] if f.default is None else kind  # noqa: UP045 (Typer reads it)


def _parameter(f: Field) -> inspect.Parameter:
    """The option of field ``f``: spelling, type, default, help and panel from its
    declaration (and the presets)."""
    s = f.setting
    option = typer.Option(
        f.default,
        s.flag or option_flag(f.name),
        help=option_help(f.name, s, PRESETS),
        metavar=s.metavar,
        rich_help_panel=PANELS[f.group],
    )
    kind = inspect.Parameter.KEYWORD_ONLY
    return inspect.Parameter(f.name, kind, default=option, annotation=option_type(f))


def train(ctx: typer.Context, **options: Any) -> None:
    """Train a RetinaNet-style detector with aLRP Loss (or AP / Focal Loss baselines)."""
    json_path: Path | None = options.pop("json_path")
    print_config: bool = options.pop("print_config")
    config = TrainConfig.from_options(**options)
    if print_config:
        from alrp_cli.detection.build import planned_config

        typer.echo(json.dumps(planned_config(config).to_dict(), indent=2))
        return
    inputs = [options[n] for n, f in FIELDS.items() if f.setting.path and n != "out"]
    outputs = Outputs(inputs)
    if config.runtime.resume is None:  # without --out: runs/ in the working directory
        out = options["out"]
        outputs.folder(out or Path("runs"), "--out" if out else "--out (default runs/)")
    json_path = outputs.file(json_path, "--json", stdout=True)
    console = Console(stderr=True)
    view = _ProgressView(console)
    if config.runtime.resume is not None and (ignored := _ignored_with_resume(ctx)):
        view.warnings.append(
            f"--resume continues the run as its config.json says; ignoring {', '.join(ignored)}"
        )
    from alrp_cli.detection.launch import run_training

    try:
        result = run_training(config, sys.argv[1:], on_event=view)
    except KeyboardInterrupt:
        view.stop()
        where = f" ({view.run_dir}/last.pt)" if view.run_dir else ""
        console.print(
            f"second interrupt: stopped at once; nothing was saved since the last checkpoint{where}"
        )
        raise typer.Exit(130) from None
    finally:
        view.stop()
    if isinstance(result, int):  # the launcher of --nproc, or a silent torchrun rank
        raise typer.Exit(result)
    table_console(json_path).print(_summary_table(result))
    if json_path is not None:
        write_json_output(json_path, {**asdict(result), "run_dir": str(result.run_dir)})
    if result.interrupted:
        console.print(
            f"interrupted: checkpoint saved; continue with `alrp train --resume {result.run_dir}`"
        )
    raise typer.Exit(result.exit_code)


train.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [
        inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
        *(_parameter(f) for f in FIELDS.values() if f.setting.option),
        inspect.Parameter(
            "json_path",
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(None, "--json", help="Write the result as JSON here." + JSON_HELP),
            annotation=typing.Optional[Path],  # noqa: UP045
        ),
        inspect.Parameter(
            "print_config",
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(
                False,
                "--print-config",
                help="Print the resolved configuration (config.json) as JSON and exit; "
                "no training.",
            ),
            annotation=bool,
        ),
    ]
)
