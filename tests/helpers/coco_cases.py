"""Small generated COCO cases and pycocotools oracles for the analysis tests."""

from __future__ import annotations

import contextlib
import io

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def random_case(
    seed: int,
    *,
    n_images: int = 12,
    n_cats: int = 4,
    dets_per_image: int = 14,
    crowd_p: float = 0.1,
) -> tuple[dict, list[dict]]:
    """A random (gt dict, results list) with crowd boxes, duplicate hits and score ties."""
    rng = np.random.default_rng(seed)
    cats = [{"id": int(c), "name": f"c{c}"} for c in (1 + 2 * np.arange(n_cats))]
    cat_ids = [c["id"] for c in cats]
    images = [{"id": int(i), "width": 100, "height": 100} for i in 10 + 3 * np.arange(n_images)]
    anns, dets = [], []
    ann_id = 1
    for img in images:
        boxes = []
        for _ in range(int(rng.integers(0, 7))):
            w, h = rng.uniform(5, 40, size=2)
            x, y = rng.uniform(0, 60, size=2)
            c = int(rng.choice(cat_ids))
            crowd = int(rng.random() < crowd_p)
            anns.append(
                {
                    "id": ann_id,
                    "image_id": img["id"],
                    "category_id": c,
                    "bbox": [float(x), float(y), float(w), float(h)],
                    "area": float(w * h * rng.uniform(0.5, 1.0)),
                    "iscrowd": crowd,
                }
            )
            ann_id += 1
            boxes.append((c, x, y, w, h))
        for _ in range(int(rng.integers(0, dets_per_image + 1))):
            if boxes and rng.random() < 0.7:
                c, x, y, w, h = boxes[int(rng.integers(len(boxes)))]
                j = rng.normal(0, 0.15, size=4)
                box = [x + j[0] * w, y + j[1] * h, w * np.exp(j[2]), h * np.exp(j[3])]
                if rng.random() < 0.15:
                    c = int(rng.choice(cat_ids))
            else:
                box = [*rng.uniform(0, 60, size=2), *rng.uniform(3, 40, size=2)]
                c = int(rng.choice(cat_ids))
            score = float(np.round(rng.uniform(0.0, 1.0), 1))  # coarse: many ties
            dets.append(
                {
                    "image_id": img["id"],
                    "category_id": c,
                    "bbox": [float(v) for v in box],
                    "score": score,
                }
            )
    return {"images": images, "annotations": anns, "categories": cats}, dets


def pycoco_eval(
    gt: dict, dets: list[dict], *, iou_thrs: list[float] | None = None, max_dets: int = 100
) -> COCOeval:
    """pycocotools COCOeval after evaluate() + accumulate() + summarize()."""
    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO()
        cg.dataset = {k: list(v) for k, v in gt.items()}
        cg.createIndex()
        cd = cg.loadRes([dict(d) for d in dets]) if dets else None
        if cd is None:  # pycocotools' loadRes cannot take an empty list
            cd = COCO()
            cd.dataset = {"images": gt["images"], "annotations": [], "categories": gt["categories"]}
            cd.createIndex()
        e = COCOeval(cg, cd, "bbox")
        if iou_thrs is not None:
            e.params.iouThrs = np.array(iou_thrs, dtype=np.float64)
        e.params.maxDets = [1, 10, max_dets] if max_dets > 10 else [1, max_dets, max_dets]
        e.evaluate()
        e.accumulate()
        if iou_thrs is None:
            e.summarize()
    return e


def oracle_matches(e: COCOeval, tind: int = 0) -> dict[int, tuple[str, int, float]]:
    """pycocotools' matching, area all: {detection id (1-based file index): (status, gt id, iou)}.

    Detections absent from the dict were not evaluated (beyond max-dets).
    """
    p = e.params
    n_area, n_img = len(p.areaRng), len(p.imgIds)
    out = {}
    for k, cat in enumerate(p.catIds):
        for i, img in enumerate(p.imgIds):
            ev = e.evalImgs[k * n_area * n_img + i]
            if ev is None:
                continue
            gts = e._gts[img, cat]
            gt_pos = {g["id"]: j for j, g in enumerate(gts)}
            ious = e.ious[img, cat]
            for dind, did in enumerate(ev["dtIds"]):
                gid = int(ev["dtMatches"][tind, dind])
                ign = bool(ev["dtIgnore"][tind, dind])
                iou = float(ious[dind, gt_pos[gid]]) if gid else float("nan")
                status = "ignored" if ign else ("tp" if gid else "fp")
                out[int(did)] = (status, gid, iou)
    return out


def oracle_ranked(e: COCOeval, tind: int = 0) -> dict[int, list[tuple[float, str, float]]]:
    """Per category, the evaluated detections in COCOeval.accumulate's order.

    {category id: [(score, status, iou), ...]}, from evalImgs concatenated over images
    and stably sorted by descending score, as accumulate does.
    """
    matches = oracle_matches(e, tind)
    p = e.params
    n_area, n_img = len(p.areaRng), len(p.imgIds)
    out = {}
    for k, cat in enumerate(p.catIds):
        ids, scores = [], []
        for i in range(n_img):
            ev = e.evalImgs[k * n_area * n_img + i]
            if ev is None:
                continue
            ids += list(ev["dtIds"])
            scores += list(ev["dtScores"])
        order = np.argsort(-np.array(scores, dtype=np.float64), kind="mergesort")
        out[cat] = [(scores[j], matches[ids[j]][0], matches[ids[j]][2]) for j in order]
    return out


def n_gt_per_class(gt: dict) -> dict[int, int]:
    """Non-ignored (non-crowd, area in [0, 1e10]) ground truths per category id."""
    out = {c["id"]: 0 for c in gt["categories"]}
    for a in gt["annotations"]:
        if not a.get("iscrowd", 0) and 0 <= a["area"] <= 1e10:
            out[a["category_id"]] += 1
    return out


def coco_case(
    seed: int,
    *,
    n_images: int = 10,
    n_cats: int = 5,
    crowd_p: float = 0.1,
    crowded: int = 0,
) -> tuple[dict, list[dict]]:
    """A random (gt dict, results list) that reaches every corner of COCOeval.

    Boxes of every area range (small, medium, large; some ground truths with ``area``
    exactly 32² or 96², the range bounds, and detections of w * h exactly on a bound),
    crowd boxes, a class with no ground truth at all (the last one), images without
    ground truth, score ties (scores rounded to 0.1), and with ``crowded`` > 0 one
    (image, class) with that many detections (beyond max-dets 100 when over 100).
    """
    rng = np.random.default_rng(seed)
    cats = [{"id": int(c), "name": f"c{c}"} for c in (2 + 3 * np.arange(n_cats))]
    cat_ids = [c["id"] for c in cats]
    gt_cats = cat_ids[:-1]  # the last class never has ground truth
    images = [{"id": int(i), "width": 300, "height": 300} for i in 5 + 7 * np.arange(n_images)]
    anns, dets = [], []

    def box() -> list[float]:
        side = float(np.exp(rng.uniform(np.log(4), np.log(200))))
        w, h = side, side * float(np.exp(rng.normal(0, 0.4)))
        return [float(rng.uniform(0, 100)), float(rng.uniform(0, 100)), w, h]

    def det(img: int, c: int, b: list[float]) -> None:
        score = float(np.round(rng.uniform(0.0, 1.0), 1))  # coarse: many ties
        dets.append({"image_id": img, "category_id": c, "bbox": b, "score": score})

    for n, img in enumerate(images):
        gts = []
        n_gt = 0 if n % 4 == 3 else int(rng.integers(1, 8))  # every fourth image: no GT
        for _ in range(n_gt):
            b = box()
            area = b[2] * b[3] * float(rng.uniform(0.5, 1.0))
            if rng.random() < 0.1:  # exactly on a range bound
                area = float(rng.choice([32.0**2, 96.0**2]))
            c = int(rng.choice(gt_cats))
            crowd = int(rng.random() < crowd_p)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": img["id"],
                    "category_id": c,
                    "bbox": b,
                    "area": area,
                    "iscrowd": crowd,
                }
            )
            gts.append((c, b))
        for _ in range(int(rng.integers(0, 25))):
            if gts and rng.random() < 0.6:
                c, (x, y, w, h) = gts[int(rng.integers(len(gts)))]
                j = rng.normal(0, 0.12, size=4)
                b = [x + j[0] * w, y + j[1] * h, w * float(np.exp(j[2])), h * float(np.exp(j[3]))]
                if rng.random() < 0.1:
                    c = int(rng.choice(cat_ids))
            else:
                b, c = box(), int(rng.choice(cat_ids))
            if rng.random() < 0.05:  # w * h exactly on a range bound
                side = float(rng.choice([32.0, 96.0]))
                b = [b[0], b[1], side, side]
            det(img["id"], c, [float(v) for v in b])
    if crowded:
        img = images[0]["id"]
        c = next((a["category_id"] for a in anns if a["image_id"] == img), gt_cats[0])
        mine = [a["bbox"] for a in anns if a["image_id"] == img and a["category_id"] == c]
        for _ in range(crowded):
            if mine and rng.random() < 0.5:
                x, y, w, h = mine[int(rng.integers(len(mine)))]
                j = rng.normal(0, 0.1, size=4)
                b = [x + j[0] * w, y + j[1] * h, w * float(np.exp(j[2])), h * float(np.exp(j[3]))]
            else:
                b = box()
            det(img, c, [float(v) for v in b])
        order = rng.permutation(len(dets))  # spread that group's records through the file
        dets = [dets[i] for i in order]
    return {"images": images, "annotations": anns, "categories": cats}, dets
