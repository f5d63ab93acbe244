"""``alrp import``: a model released by the official aLRP repository as a run directory."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from alrp_cli.cli.options import JSON_HELP, table_console
from alrp_cli.outputs import Outputs, write_json_output


def import_command(
    checkpoint: Path = typer.Argument(
        ...,
        help="An mmdetection 2.x checkpoint of the official aLRP repository (e.g. the "
        "released aLRP Loss GIoU+ATSS R50 model), with 'state_dict' and 'meta'.",
    ),
    out: Path = typer.Option(..., "--out", help="Run directory to create (must be new)."),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="The official config file of the checkpoint (its _base_ files beside it, as "
        "in the repository), for a checkpoint without meta['config']; wins over it.",
    ),
    json_path: Path | None = typer.Option(
        None, "--json", help="Write a summary as JSON here." + JSON_HELP
    ),
) -> None:
    """Convert an official mmdetection checkpoint into a run directory for `alrp predict`."""
    from alrp_cli.detection.mmdet_import import import_checkpoint

    outputs = Outputs([checkpoint, config])
    outputs.folder(out, "--out")
    json_path = outputs.file(json_path, "--json", stdout=True)
    with outputs.undo_on_error():
        result = import_checkpoint(checkpoint, out, config=config)
        cfg = result.config
        summary = {
            "run_dir": str(result.run_dir),
            "checkpoint": str(result.checkpoint),
            "config": result.config_source,
            "loss": cfg.model.loss,
            "assigner": cfg.model.assigner,
            "backbone": cfg.model.backbone,
            "classes": len(result.category_names),
            "tensors": result.tensors,
            "test_scale": cfg.eval.test_scale,
        }
        if json_path is not None:
            write_json_output(json_path, summary)
    table = Table(title="alrp import")
    table.add_column("")
    table.add_column("value")
    for key, value in summary.items():
        shown = " x ".join(map(str, value)) if isinstance(value, list) else str(value)
        table.add_row(key, shown)
    table_console(json_path).print(table)
    Console(stderr=True).print(
        f"next: alrp predict {result.run_dir} --images IMAGES --ann ANNOTATIONS "
        "-o predictions.json",
        highlight=False,
        soft_wrap=True,  # a command to copy: never broken over lines
    )
