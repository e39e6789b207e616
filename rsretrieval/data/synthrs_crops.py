"""Crops of synthrs scenes with captions of what is inside them (training pairs of the embedded rs-tiny).

The benchmark's scene modes embed image crops (uniform grid cells, region crops) with the backbone. A
backbone trained on whole 64 px images only has never seen a crop, so every crop is out of its
distribution. :func:`crop_spec` cuts a scene down to a box (the objects that are in it, in the box's
own coordinates) and :func:`crop_caption` describes that sub-scene with the fine-grained caption
writer, so rs-tiny can learn crops the way it learns whole images. Only train-split scenes are cut.

What is "in" a crop: a small object (car, tank, house, ...) when its centre lies inside the box; a
large or long one (runway, road, apron, field, ...) when at least ``LARGE_MIN_SHARE`` of its box area,
or of the crop's area, lies inside, with its geometry clipped to the box. Regions (water, forest,
rivers) keep their outlines in crop coordinates and are rasterised over the crop's square canvas, so
a non-square crop may name land cover just outside its short side (captions only, pixels are exact).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rsretrieval.data.synthrs_scenes import AREA_KINDS, Region, SceneObject2D, SceneSpec

Box = tuple[int, int, int, int]
LARGE_KINDS = AREA_KINDS | {"road", "terminal building", "warehouse"}  # clipped, not kept whole
LARGE_MIN_SHARE = 0.25


def _overlap(a: tuple[float, float, float, float], b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(w, 0.0) * max(h, 0.0)


def _clip(o: SceneObject2D, box: Box) -> SceneObject2D | None:
    """A large object cut to the box (shifted to box coordinates), or None when too little of it is inside."""
    x0, y0, x1, y1 = box
    bx = o.bbox()
    inside = _overlap(bx, box)
    own = max((bx[2] - bx[0]) * (bx[3] - bx[1]), 1e-9)
    if inside < LARGE_MIN_SHARE * min(own, (x1 - x0) * (y1 - y0)):
        return None
    cx0, cy0, cx1, cy1 = max(bx[0], x0), max(bx[1], y0), min(bx[2], x1), min(bx[3], y1)
    if o.shape == "line":  # a road: keep its width, cut its length to the box
        vertical = o.angle % 180 == 0
        length = (cy1 - cy0) if vertical else (cx1 - cx0)
        return dataclasses.replace(o, x=(o.x if vertical else (cx0 + cx1) / 2) - x0,
                                   y=((cy0 + cy1) / 2 if vertical else o.y) - y0, h=length)
    if o.angle % 90 != 0:  # a rotated area: keep it whole (only its position moves)
        return dataclasses.replace(o, x=o.x - x0, y=o.y - y0)
    across = o.angle % 180 != 0  # w runs along x unless turned by 90 degrees
    w, h = (cy1 - cy0, cx1 - cx0) if across else (cx1 - cx0, cy1 - cy0)
    return dataclasses.replace(o, x=(cx0 + cx1) / 2 - x0, y=(cy0 + cy1) / 2 - y0, w=w, h=h)


def crop_spec(spec: SceneSpec, box: Box) -> SceneSpec:
    """The part of ``spec`` inside ``box`` = (x0, y0, x1, y1), in the box's coordinates (see module doc)."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0)
    objects = []
    for o in spec.objects:
        if o.kind in LARGE_KINDS:
            clipped = _clip(o, box)
            if clipped is not None:
                objects.append(clipped)
        elif x0 <= o.x < x1 and y0 <= o.y < y1:
            objects.append(dataclasses.replace(o, x=o.x - x0, y=o.y - y0))
    regions = [Region(r.kind, [(px - x0, py - y0) for px, py in r.points], r.width) for r in spec.regions]
    return SceneSpec(spec.scene_type, side, spec.background, regions, objects, spec.texture_seed)


def crop_caption(spec: SceneSpec, box: Box, rng: np.random.Generator) -> str:
    """A fine-grained caption of what ``box`` shows (the synthrs caption writer on the cut scene)."""
    from rsretrieval.data.synthrs_text import build_graph, fine_grained_caption

    sub = crop_spec(spec, box)
    return fine_grained_caption(sub, build_graph(sub), rng)


def image_index(image_id: str) -> tuple[str, int]:
    """(split, index) of a synthrs image id such as ``synthrs:train_00012``."""
    name = image_id.split(":", 1)[-1]
    split, _, index = name.rpartition("_")
    if not split or not index.isdigit():
        raise ValueError(f"{image_id!r} is not a synthrs image id (synthrs:<split>_<index>)")
    return split, int(index)

