"""``alrp predict``: run a trained checkpoint over images and write COCO results JSON."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from alrp_cli.cli.options import JSON_HELP, table_console
from alrp_cli.cli.progress import progress_bar
from alrp_cli.device import DEVICE_HELP
from alrp_cli.outputs import Outputs, write_json_output


def predict(
    checkpoint: Path = typer.Argument(
        ...,
        help="A checkpoint from `alrp train` (last.pt, best.pt), or a run directory "
        "(its best.pt, else last.pt).",
    ),
    images: Path = typer.Option(..., "--images", help="Folder of images, or one image file."),
    ann: Path | None = typer.Option(
        None, "--ann", help="COCO annotation file of the images (image ids and categories)."
    ),
    output: Path = typer.Option(
        Path("predictions.json"), "-o", "--output", help="COCO results JSON to write."
    ),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    batch_size: int = typer.Option(8, "--batch-size", help="Images per forward pass."),
    workers: int = typer.Option(0, "--workers", help="Data-loading worker processes."),
    score_threshold: float | None = typer.Option(
        None,
        "--score-threshold",
        min=0.0,
        max=1.0,
        help="Override the checkpoint's inference threshold.",
    ),
    json_path: Path | None = typer.Option(
        None, "--json", help="Write a summary as JSON here." + JSON_HELP
    ),
) -> None:
    """Run a trained detector over images and write COCO results (what `alrp analyze` reads)."""
    from alrp_cli.detection.predict import predict as run_predict

    outputs = Outputs([checkpoint, ann, images])
    outputs.file(output, "-o/--output")
    json_path = outputs.file(json_path, "--json", stdout=True)
    console = Console(stderr=True)
    progress = progress_bar(console, transient=False)
    task = progress.add_task("predict", total=None)

    def start(total: int) -> None:  # only once the inputs are checked: errors stay one line
        progress.update(task, total=total)
        progress.start()

    try:
        result = run_predict(
            checkpoint,
            images,
            output,
            ann=ann,
            device=device,
            batch_size=batch_size,
            workers=workers,
            score_threshold=score_threshold,
            on_start=start,
            on_batch=lambda n: progress.update(task, advance=n),
        )
    finally:
        if progress.live.is_started:
            progress.stop()
    table = Table(title="alrp predict")
    table.add_column("output")
    table.add_column("images", justify="right")
    table.add_column("detections", justify="right")
    table.add_row(str(result.output), str(result.images), str(result.detections))
    table_console(json_path).print(table)
    if json_path is not None:
        write_json_output(
            json_path,
            {
                "output": str(result.output),
                "images": result.images,
                "detections": result.detections,
            },
        )
