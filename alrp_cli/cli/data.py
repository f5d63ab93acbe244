"""``alrp data``: write the synthetic shapes dataset; preview any COCO-format dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from alrp_cli.cli.options import JSON_HELP, table_console
from alrp_cli.cli.progress import progress_bar
from alrp_cli.errors import UserError
from alrp_cli.limits import SEED_MAX
from alrp_cli.outputs import Outputs, write_json_output
from alrp_cli.synth_names import SYNTH_CLASSES

data_app = typer.Typer(
    name="data",
    help="Datasets: write the built-in synthetic shapes dataset, preview a COCO-format dataset.",
    no_args_is_help=True,
)


def _summary_table(title: str, summaries: dict[str, dict[str, Any]]) -> Table:
    """One column per split, one row per count: stays narrow whatever the number of classes."""
    table = Table(title=title)
    table.add_column("")
    for split in summaries:
        table.add_column(split, justify="right")
    splits = list(summaries.values())
    names = list(dict.fromkeys(n for s in splits for n in s["boxes_per_category"]))
    table.add_row("images", *(str(s["images"]) for s in splits))
    table.add_row("boxes", *(str(s["boxes"]) for s in splits))
    for name in names:
        table.add_row(f"  {name}", *(str(s["boxes_per_category"].get(name, 0)) for s in splits))
    for size, rule in (
        ("small", "area < 32²"),
        ("medium", "32² ≤ area < 96²"),
        ("large", "96² ≤ area"),
    ):
        table.add_row(f"  {size} ({rule})", *(str(s["boxes_by_size"][size]) for s in splits))
    return table


@data_app.command("synth")
def synth(
    out: Path = typer.Option(
        ...,
        "--out",
        help="Folder to write: new, empty, or an older synthetic set (replaced whole; one "
        "that holds other files too is refused).",
    ),
    num_train: int = typer.Option(1500, "--num-train", help="Training images."),
    num_val: int = typer.Option(300, "--num-val", help="Validation images."),
    image_size: int = typer.Option(
        128, "--image-size", help="Image side in pixels (square, >= 32)."
    ),
    seed: int = typer.Option(
        0, "--seed", min=0, max=SEED_MAX, help="Seed; the same seed writes byte-identical files."
    ),
    classes: str = typer.Option(
        ",".join(SYNTH_CLASSES),
        "--classes",
        help="Comma-separated shape names to use (ids 1..C in this order).",
    ),
    preset: str = typer.Option(
        "default",
        "--preset",
        help="default: 5 shapes; hard: 20 near-duplicate classes, small objects, distractors, "
        "heavier occlusion (COCO-like; --classes does not apply).",
    ),
    json_path: Path | None = typer.Option(
        None, "--json", help="Also write the summary as JSON here." + JSON_HELP
    ),
) -> None:
    """Write the synthetic shapes dataset in the COCO layout (what `alrp train` uses by default).

    Coloured circles, squares, triangles, crosses and rings (12-60 px at 128 px), 1-6 per image,
    overlapping, on textured backgrounds. Pass the folder to `alrp train --data`.
    """
    from alrp_cli.detection.data import (
        HARD_CLASSES,
        coco_layout,
        coco_summary,
        load_coco,
        make_synthetic_coco,
    )

    names = tuple(c.strip() for c in classes.split(",") if c.strip())
    if preset == "hard" and names == SYNTH_CLASSES:
        names = HARD_CLASSES
    outputs = Outputs()
    outputs.folder(out, "--out")
    json_path = outputs.file(json_path, "--json", stdout=True)
    console = Console(stderr=True)
    with progress_bar(console) as progress:
        task = progress.add_task("synth", total=num_train + num_val)
        make_synthetic_coco(
            out,
            seed=seed,
            num_train=num_train,
            num_val=num_val,
            image_size=image_size,
            classes=names,
            preset=preset,
            progress=lambda done, total: progress.update(task, completed=done),
        )
    paths = coco_layout(out)
    summaries = {
        "train": coco_summary(load_coco(paths.train_ann)),
        "val": coco_summary(load_coco(paths.val_ann)),
    }
    table_console(json_path).print(_summary_table(f"synthetic shapes dataset: {out}", summaries))
    if json_path is not None:
        write_json_output(
            json_path,
            {
                "out": str(out),
                "params": {
                    "seed": seed,
                    "num_train": num_train,
                    "num_val": num_val,
                    "image_size": image_size,
                    "classes": list(names),
                    "preset": preset,
                },
                "splits": summaries,
                "layout": {k: str(v) for k, v in vars(paths).items()},
            },
        )


@data_app.command("preview")
def preview(
    output: Path | None = typer.Option(
        None,
        "-o",
        "--output",
        help="Image file to write: a grid of images with their boxes (required).",
        show_default=False,
    ),
    data: Path | None = typer.Option(None, "--data", help="Dataset folder in the COCO layout."),
    split: str = typer.Option("val", "--split", help="With --data: 'train' or 'val'."),
    ann: Path | None = typer.Option(None, "--ann", help="Annotation JSON (instead of --data)."),
    images: Path | None = typer.Option(None, "--images", help="Image folder (with --ann)."),
    num: int = typer.Option(12, "--num", help="Images to draw (the first by id)."),
    cols: int = typer.Option(4, "--cols", help="Images per row (at most the images drawn)."),
    cell: int = typer.Option(256, "--cell", help="Side of each drawn image in pixels."),
) -> None:
    """Draw the first images of a COCO-format dataset with their boxes into one image."""
    from alrp_cli.detection.data import resolve_data
    from alrp_cli.detection.data.preview import render_preview

    out = output
    if out is None:
        raise UserError("give -o/--output FILE: the image to write")
    if split not in ("train", "val"):
        raise UserError(f"--split must be 'train' or 'val', got {split!r}")
    if (ann is None) != (images is None):
        raise UserError("--ann and --images go together")
    if ann is not None and images is not None:
        ann_file, image_dir = ann, images
    else:
        if data is None:
            raise UserError("give --data DIR, or --ann FILE and --images DIR")
        paths = resolve_data(data, splits=(split,))
        assert paths is not None  # data was given
        ann_file, image_dir = getattr(paths, f"{split}_ann"), getattr(paths, f"{split}_images")
    Outputs([ann_file, image_dir]).file(out, "-o/--output")
    ids = render_preview(image_dir, ann_file, out, num_images=num, cols=cols, cell=cell)
    Console(soft_wrap=True).print(f"wrote {out}: {len(ids)} images from {ann_file}")


@data_app.command("info")
def info(
    data: Path | None = typer.Option(None, "--data", help="Dataset folder in the COCO layout."),
    ann: list[Path] | None = typer.Option(None, "--ann", help="Annotation JSON; repeatable."),
    json_path: Path | None = typer.Option(
        None, "--json", help="Also write the counts as JSON here." + JSON_HELP
    ),
) -> None:
    """Count the images and boxes (per class and COCO size range) of COCO annotation files."""
    from alrp_cli.detection.data import coco_summary, load_coco, resolve_data

    files: dict[str, Path] = {}
    if data is not None:
        paths = resolve_data(data)
        assert paths is not None and paths.train_ann and paths.val_ann  # data was given
        files = {"train": paths.train_ann, "val": paths.val_ann}
    for a in ann or []:
        files[a.name if a.name not in files else str(a)] = a  # short column names
    if not files:
        raise UserError("give --data DIR or --ann FILE")
    json_path = Outputs([data, *files.values()]).file(json_path, "--json", stdout=True)
    summaries = {name: coco_summary(load_coco(path)) for name, path in files.items()}
    table_console(json_path).print(_summary_table("COCO annotations", summaries))
    if json_path is not None:
        write_json_output(
            json_path, {"files": {k: str(v) for k, v in files.items()}, "counts": summaries}
        )
