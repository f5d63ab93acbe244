"""The built-in synthetic shapes dataset, written to disk in the COCO layout, and its cache.

Images are drawn by :func:`.shapes.render_image`, each from its own generator seeded with
``(seed, split, index)``: the same parameters give byte-identical files, and a larger
``num_train`` only appends images. Annotations are *visible* (modal) extents: an object's
box, area and RLE segmentation (pycocotools) come from its pixels left visible after the
later objects are drawn.

The layout is the one ``--data DIR`` reads (one code path for real and synthetic data)::

    DIR/annotations/instances_train2017.json   DIR/train2017/000001.png ...
    DIR/annotations/instances_val2017.json     DIR/val2017/000001.png ...
    DIR/alrp-synth.json                        the parameters (marks the folder as ours)
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from alrp_cli.detection.data.shapes import GENERATOR_VERSION, SYNTH_CLASSES, render_image
from alrp_cli.detection.data.shapes_hard import (
    HARD_CLASSES,
    HARD_GENERATOR_VERSION,
    render_image_hard,
)
from alrp_cli.errors import UserError
from alrp_cli.limits import check_fits
from alrp_cli.synth_names import MARKER  # written last: marks the folder as ours

__all__ = [
    "HARD_CLASSES",
    "SYNTH_CLASSES",
    "SYNTH_PRESETS",
    "cache_root",
    "make_synthetic_coco",
    "synthetic_dataset_dir",
]

MIN_IMAGE_SIZE = 32
BYTES_PER_IMAGE_RECORD = 1024
"""Memory the annotations of one image take at least while a split is written (its image
record and the pending job; its boxes and RLE masks come on top)."""
_SPLITS = (("train", 0), ("val", 1))
SYNTH_PRESETS = ("default", "hard")
"""``default``: 5 shapes (:mod:`.shapes`); ``hard``: 20 near-duplicate classes, small objects,
distractors, heavier occlusion (:mod:`.shapes_hard`)."""

ProgressFn = Callable[[int, int], None]


def _annotation(mask: np.ndarray, category_id: int) -> dict:
    """COCO fields of one object from its visible mask (ids are filled in by the caller)."""
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {
        "category_id": category_id,
        "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
        "area": float(mask.sum()),
        "iscrowd": 0,
        "segmentation": {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode()},
    }


def _make_image(
    job: tuple[Path, int, int, int, int, tuple[str, ...], str],
) -> tuple[dict, list[dict]]:
    """Render image ``index`` of a split, save it as PNG; return its image and annotation dicts."""
    image_dir, seed, code, index, image_size, classes, preset = job
    rng = np.random.default_rng([seed, code, index])
    if preset == "hard":
        pixels, objects = render_image_hard(rng, image_size)
    else:
        pixels, objects = render_image(rng, image_size, classes)
    image_id = index + 1
    name = f"{image_id:06d}.png"
    Image.fromarray(pixels).save(image_dir / name, compress_level=1)
    image = {"id": image_id, "file_name": name, "height": image_size, "width": image_size}
    anns = [{"image_id": image_id, **_annotation(mask, cls + 1)} for cls, mask in objects]
    return image, anns


def _check_params(
    seed: int,
    num_train: int,
    num_val: int,
    image_size: int,
    classes: Sequence[str],
    preset: str = "default",
) -> None:
    if preset not in SYNTH_PRESETS:
        raise UserError(f"--preset must be one of {', '.join(SYNTH_PRESETS)}, got {preset!r}")
    if preset == "hard":
        if tuple(classes) != HARD_CLASSES:
            raise UserError("--classes cannot be combined with --preset hard (its 20 are fixed)")
        classes = SYNTH_CLASSES  # checked above; the shape-name check below does not apply
    if seed < 0:
        raise UserError(f"--seed must be >= 0, got {seed}")
    if num_train < 1 or num_val < 1:
        raise UserError(f"--num-train and --num-val must be >= 1, got {num_train} and {num_val}")
    if image_size < MIN_IMAGE_SIZE:
        raise UserError(f"--image-size must be >= {MIN_IMAGE_SIZE}, got {image_size}")
    # Lower estimates: an image's RGB pixels and one object mask; a record per image.
    check_fits(4 * image_size**2, "--image-size", what=f"images of {image_size} × {image_size}")
    check_fits(
        (num_train + num_val) * BYTES_PER_IMAGE_RECORD,
        "--num-train/--num-val",
        what=f"the annotations of {num_train + num_val:,} images",
    )
    unknown = [c for c in classes if c not in SYNTH_CLASSES]
    if unknown or not classes or len(set(classes)) != len(classes):
        raise UserError(
            f"--classes must be distinct names among {', '.join(SYNTH_CLASSES)}; got "
            f"{', '.join(classes) or 'none'}"
        )


def _write_split(
    root: Path,
    split: str,
    code: int,
    count: int,
    *,
    seed: int,
    image_size: int,
    classes: tuple[str, ...],
    preset: str,
    params: dict,
    pool: Executor | None,
    tick: Callable[[], None],
) -> None:
    image_dir = root / f"{split}2017"
    image_dir.mkdir(parents=True)
    jobs = [(image_dir, seed, code, index, image_size, classes, preset) for index in range(count)]
    results = pool.map(_make_image, jobs, chunksize=16) if pool else map(_make_image, jobs)
    images, annotations = [], []
    for image, anns in results:  # in index order whatever the pool does: deterministic ids
        images.append(image)
        for ann in anns:
            annotations.append({"id": len(annotations) + 1, **ann})
        tick()
    coco = {
        "info": {"description": "alrp synthetic shapes", "split": split, **params},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(classes)
        ],
    }
    ann_dir = root / "annotations"
    ann_dir.mkdir(exist_ok=True)
    (ann_dir / f"instances_{split}2017.json").write_text(json.dumps(coco, separators=(",", ":")))


def _pool(total: int) -> Executor | None:
    """Worker processes for large sets (PNG encoding dominates); None for small ones.

    Forked workers run numpy and PIL only, never torch, so forking a process that has
    imported torch is safe here.
    """
    workers = min(os.cpu_count() or 1, 8)
    if total < 200 or workers < 2 or "fork" not in mp.get_all_start_methods():
        return None
    return ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"))


def make_synthetic_coco(
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    num_train: int = 1500,
    num_val: int = 300,
    image_size: int = 128,
    classes: Sequence[str] | None = None,
    preset: str = "default",
    progress: ProgressFn | None = None,
) -> Path:
    """Write the synthetic shapes dataset in the COCO layout to ``out_dir``; return it.

    Images are ``image_size`` x ``image_size`` RGB PNGs; categories are ``classes`` (default
    :data:`SYNTH_CLASSES`; with ``preset="hard"`` always :data:`HARD_CLASSES`) with ids 1..C.
    The folder is built under a temporary name beside ``out_dir`` and renamed into place, so
    it is either complete or absent. An existing ``out_dir`` must be empty or an earlier
    synthetic dataset holding nothing but what it wrote (it is replaced); anything else
    raises :class:`~alrp_cli.errors.UserError`: nothing is deleted that this function did not
    write. ``progress(done, total)`` is called after each image.
    """
    classes = _default_classes(classes, preset)
    _check_params(seed, num_train, num_val, image_size, classes, preset)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise UserError(
                f"{out}: exists, is not empty and is not an alrp synthetic dataset; "
                "choose a new or empty directory"
            )
        foreign = _foreign_entries(out)
        if foreign:
            n = len(foreign)
            raise UserError(
                f"{out}: holds {n} {'entry' if n == 1 else 'entries'} that alrp data synth did "
                f"not write (first: {out / foreign[0]}); the older synthetic set is replaced "
                "whole, so move them out first or choose a new directory"
            )
    params = {
        "generator_version": HARD_GENERATOR_VERSION if preset == "hard" else GENERATOR_VERSION,
        "seed": seed,
        "num_train": num_train,
        "num_val": num_val,
        "image_size": image_size,
        "classes": list(classes),
    }
    if preset != "default":  # the default set's files stay byte-identical to earlier versions
        params["preset"] = preset
    total, done = num_train + num_val, 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    tmp = _make_tmpdir(out.parent, f".{out.name}.")
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the dataset is not
    pool = _pool(total)
    try:
        for split, code in _SPLITS:
            count = num_train if split == "train" else num_val
            _write_split(
                tmp,
                split,
                code,
                count,
                seed=seed,
                image_size=image_size,
                classes=classes,
                preset=preset,
                params=params,
                pool=pool,
                tick=tick,
            )
        (tmp / MARKER).write_text(json.dumps(params, indent=2) + "\n")
        _move_into_place(tmp, out)
    except OSError as err:  # a full disk, a folder we may not write: the user's to fix
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"{out}: cannot write the dataset ({err.strerror or err})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return out


def _own_entries(params: dict) -> set[str] | None:
    """What a synthetic set with these parameters (its ``alrp-synth.json``) wrote, as paths
    relative to its folder; None when the parameters do not say."""
    counts = [params.get(f"num_{split}") for split, _ in _SPLITS]
    if not all(type(n) is int and n >= 0 for n in counts):
        return None
    own = {MARKER, "annotations"}
    for (split, _), count in zip(_SPLITS, counts, strict=True):
        own |= {f"{split}2017", f"annotations/instances_{split}2017.json"}
        own |= {f"{split}2017/{index:06d}.png" for index in range(1, count + 1)}
    return own


def _foreign_entries(folder: Path) -> list[str]:
    """The entries of an older synthetic set's ``folder`` that it did not write itself
    (sorted; everything when its ``alrp-synth.json`` is unreadable): replacing the folder
    would delete them."""
    found = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
    try:
        params = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        params = None
    own = _own_entries(params) if isinstance(params, dict) else None
    if own is None:
        return [e for e in found if e != MARKER]
    # a foreign folder is named once, not with each file in it
    foreign = [e for e in found if e not in own]
    return [e for e in foreign if not any(e.startswith(f + "/") for f in foreign)]


def _default_classes(classes: Sequence[str] | None, preset: str) -> tuple[str, ...]:
    if classes is not None:
        return tuple(classes)
    return HARD_CLASSES if preset == "hard" else SYNTH_CLASSES


def _make_tmpdir(parent: Path, prefix: str, hint: str = "") -> Path:
    """A new temporary folder inside ``parent`` (created if needed); UserError if we cannot."""
    try:
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=parent))
    except OSError as err:
        raise UserError(
            f"{parent}: cannot create a folder there ({err.strerror or err}){hint}"
        ) from None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _move_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished folder ``tmp`` onto ``out`` (empty or an older synthetic set)."""
    if out.is_dir():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def cache_root() -> Path:
    """The cache folder: ``$ALRP_CACHE``, else ``$XDG_CACHE_HOME/alrp``, else ``~/.cache/alrp``."""
    if os.environ.get("ALRP_CACHE"):
        return Path(os.environ["ALRP_CACHE"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "alrp"
    return Path.home() / ".cache" / "alrp"


def synthetic_dataset_dir(
    *,
    seed: int = 0,
    num_train: int = 1500,
    num_val: int = 300,
    image_size: int = 128,
    classes: Sequence[str] | None = None,
    preset: str = "default",
    progress: ProgressFn | None = None,
) -> Path:
    """The cached synthetic dataset for these parameters, built on first use.

    The folder lives under :func:`cache_root`, keyed by the generator version and the
    parameters; it appears atomically (see :func:`make_synthetic_coco`), so a crash never
    leaves a half-built dataset that a later run would trust.
    """
    classes = _default_classes(classes, preset)
    _check_params(seed, num_train, num_val, image_size, classes, preset)
    key = f"synth-v{GENERATOR_VERSION}-seed{seed}-n{num_train}-{num_val}-s{image_size}"
    if preset == "hard":
        key = (
            f"synth-hard-v{HARD_GENERATOR_VERSION}-seed{seed}-n{num_train}-{num_val}-s{image_size}"
        )
    elif classes != SYNTH_CLASSES:
        key += "-c" + hashlib.sha1(",".join(classes).encode()).hexdigest()[:8]
    out = cache_root() / key
    if not (out / MARKER).is_file():
        hint = "; set ALRP_CACHE to a writable folder"
        tmp_parent = _make_tmpdir(cache_root(), f".{key}.", hint)
        try:
            built = make_synthetic_coco(
                tmp_parent / key,
                seed=seed,
                num_train=num_train,
                num_val=num_val,
                image_size=image_size,
                classes=classes,
                preset=preset,
                progress=progress,
            )
            try:
                os.rename(built, out)
            except OSError:
                if not (out / MARKER).is_file():  # not a concurrent build that won the race
                    raise
        finally:
            shutil.rmtree(tmp_parent, ignore_errors=True)
    return out
