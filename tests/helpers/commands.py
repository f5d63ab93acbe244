"""Every command of the CLI with valid arguments, its input paths and its output options:
the tables the output checks walk (a new command or output option must be added here, or
tests/outputs/test_never_an_input.py fails)."""

from __future__ import annotations

from pathlib import Path

from typer.main import get_command

from alrp_cli.cli.app import app
from tests.helpers.tiny_training import TINY_CLI_OPTIONS
from tests.helpers.world import World

OUTPUT_OPTIONS = {"--json", "--csv-dir", "-o", "--output", "--out", "--plot"}
FOLDER_OPTIONS = {("train", "--out"), ("report", "--out"), ("analyze", "--csv-dir"),
                  ("data synth", "--out"), ("import", "--out")}  # fmt: skip


def commands(w: World, fresh: Path) -> dict[str, tuple[list[object], list[Path], dict]]:
    """command -> (valid arguments, its input paths, required outputs with fresh values)."""
    return {
        "analyze": (["analyze", w.predictions, "--gt", w.val_ann], [w.predictions, w.val_ann], {}),
        "predict": (
            ["predict", w.checkpoint, "--images", w.val_images, "--ann", w.val_ann],
            [w.checkpoint, w.val_images, w.val_ann, w.image],
            {"-o": fresh / "p.json"},
        ),
        "check-balance": (["check-balance", "--from", w.loss_inputs], [w.loss_inputs], {}),
        "data info": (["data", "info", "--ann", w.val_ann], [w.val_ann], {}),
        "data preview": (
            ["data", "preview", "--ann", w.val_ann, "--images", w.val_images],
            [w.val_ann, w.val_images, w.image],
            {"-o": fresh / "p.png"},
        ),
        "data synth": (
            ["data", "synth", "--num-train", "2", "--num-val", "1"],
            [],
            {"--out": fresh / "synth"},
        ),
        "report": (["report", w.analysis], [w.analysis], {"--out": fresh / "r"}),
        "train": (
            ["train", "--data", w.data, *TINY_CLI_OPTIONS],
            [w.data, w.train_ann, w.val_ann, w.image],
            {},
        ),
        "bench": (["bench", "--size", "10x100", "--reference-repeats", "0"], [], {}),
        # outputs are checked before the file is read: any checkpoint serves here
        "import": (["import", w.checkpoint], [w.checkpoint], {"--out": fresh / "imported"}),
    }


def output_options() -> dict[str, list[str]]:
    """Every leaf command of the CLI -> its output options (each as its first spelling)."""
    found: dict[str, list[str]] = {}

    def walk(cmd, prefix: str) -> None:
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, f"{prefix} {name}".strip())
        if not hasattr(cmd, "commands"):
            found[prefix] = [
                p.opts[0]
                for p in cmd.params
                if set(p.opts) & OUTPUT_OPTIONS and not getattr(p, "hidden", False)
            ]

    walk(get_command(app), "")
    return found
