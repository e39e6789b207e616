"""Image scene graphs (thesis appendix A.1.2) built from object boxes: detector output, DOTA/DIOR/COCO
ground truth, GraVLM's ``det_json``, or STAR's expert scene graphs.

The graph follows the conventions of synthrs' ground truth (:func:`rsretrieval.data.synthrs_text.build_graph`)
and of the simulated VLM, so that box graphs, generated graphs and oracle graphs are comparable node for node:

* one node per object type (not per box), attributes ``count`` (the number of boxes), ``size`` (the sorted,
  '/'-joined set of per-box size classes, e.g. ``"small/large"``) and ``position`` (where the type's box centres
  lie, in thirds of the image: ``"north-west"``, ``"center"``, ...). Boxes carry no colour, so there is none;
* an ``inside`` edge from every type node to the scene hyper-node (``SCENE_NODE_ID``), labelled with the scene
  when it is known, else ``UNKNOWN_SCENE``;
* relations between types: given ones first (STAR's expert triplets, mapped from boxes to their types),
  then, where ``spatial`` is on, one relation per unlinked pair from the geometry of the boxes, most specific
  first, at most ``MAX_SPATIAL_PER_SUBJECT`` per subject (like synthrs):
  ``on`` (most of the subject's box centres lie inside the object's boxes, which are larger: cars on a parking
  lot, planes on an apron), ``adjacent_to`` (some boxes of the two types are within ``ADJACENT_GAP_FRAC`` of the
  image side), else ``north_of`` / ``south_of`` / ``west_of`` / ``east_of`` when the union boxes of the two types
  are separated along that axis. These are a subset of synthrs' relation names (image y grows southwards).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rsretrieval.graphs.schema import SCENE_NODE_ID, ImageSceneGraph, Relation, SceneObject

# size class of one box from its area / the image area. On synthrs' 256 px images these split its storage tanks
# (7 / 14 / 22 px wide: 0.06% / 0.23% / 0.58%) and houses (0.16% / 0.34%) as the generator labels them
SMALL_MAX_AREA_FRAC = 0.002
LARGE_MIN_AREA_FRAC = 0.005
ADJACENT_GAP_FRAC = 6 / 256  # synthrs' "adjacent_to": boxes at most 6 px apart on a 256 px image
ON_INSIDE_FRAC = 0.8  # share of the subject's box centres inside the object's boxes for "on" (synthrs: 0.8)
MAX_SPATIAL_PER_SUBJECT = 2  # synthrs keeps at most two relations per subject
UNKNOWN_SCENE = "aerial scene"  # scene label when the source names none
SPATIAL_RELATIONS = ("on", "adjacent_to", "north_of", "south_of", "west_of", "east_of")  # priority order


@dataclass(frozen=True)
class Box:
    """One object: its category and outline (4+ corner points, image pixels, y down), optional score and id."""

    category: str
    polygon: tuple[tuple[float, float], ...]
    score: float | None = None
    key: str | None = None  # the source's own id of the object (STAR's group id), for given relations

    @classmethod
    def xyxy(cls, category: str, x0: float, y0: float, x1: float, y1: float, score: float | None = None,
             key: str | None = None) -> "Box":
        """An axis-aligned box from its corners."""
        return cls(category, ((x0, y0), (x1, y0), (x1, y1), (x0, y1)), score, key)

    @classmethod
    def rotated(cls, category: str, cx: float, cy: float, w: float, h: float, angle: float,
                score: float | None = None, key: str | None = None) -> "Box":
        """A rotated box: centre, width, height and angle in radians (mmrotate's ``(cx, cy, w, h, a)``)."""
        c, s = math.cos(angle), math.sin(angle)
        pts = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
        return cls(category, tuple((cx + x * c - y * s, cy + x * s + y * c) for x, y in pts), score, key)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the outline."""
        xs, ys = [p[0] for p in self.polygon], [p[1] for p in self.polygon]
        return min(xs), min(ys), max(xs), max(ys)

    @property
    def area(self) -> float:
        """Area of the outline (shoelace formula: a rotated box keeps its true area, not its bounds')."""
        p = self.polygon
        return abs(sum(p[i][0] * p[i - 1][1] - p[i - 1][0] * p[i][1] for i in range(len(p)))) / 2

    @property
    def centre(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.bounds
        return (x0 + x1) / 2, (y0 + y1) / 2


def size_class(area: float, image_area: float) -> str:
    """'small' / 'medium' / 'large' from a box's share of the image (``SMALL_MAX_AREA_FRAC``, ``LARGE_MIN_AREA_FRAC``)."""
    frac = area / image_area if image_area > 0 else 0.0
    return "small" if frac < SMALL_MAX_AREA_FRAC else "large" if frac >= LARGE_MIN_AREA_FRAC else "medium"


def position(centres: np.ndarray, width: float, height: float) -> str:
    """Where the mean centre lies in thirds of the image (synthrs' ``position``): 'north-west' ... 'center'."""
    cx, cy = centres.mean(0) / (width, height)
    ns = "north" if cy < 1 / 3 else "south" if cy > 2 / 3 else ""
    ew = "west" if cx < 1 / 3 else "east" if cx > 2 / 3 else ""
    return "-".join(w for w in (ns, ew) if w) or "center"


def _gap(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest gap between any box of ``a`` and any of ``b`` ((N, 4) xyxy; 0 when they touch or overlap)."""
    dx = np.maximum(0, np.maximum(a[:, None, 0] - b[None, :, 2], b[None, :, 0] - a[:, None, 2]))
    dy = np.maximum(0, np.maximum(a[:, None, 1] - b[None, :, 3], b[None, :, 1] - a[:, None, 3]))
    return float(np.hypot(dx, dy).min())


def spatial_relation(a: np.ndarray, b: np.ndarray, side: float) -> str | None:
    """The most specific relation of boxes ``a`` to boxes ``b`` ((N, 4) xyxy arrays), or None (see module doc)."""
    ca = np.stack([(a[:, 0] + a[:, 2]) / 2, (a[:, 1] + a[:, 3]) / 2], 1)
    inside = ((ca[:, None, 0] >= b[None, :, 0]) & (ca[:, None, 0] <= b[None, :, 2])
              & (ca[:, None, 1] >= b[None, :, 1]) & (ca[:, None, 1] <= b[None, :, 3])).any(1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    if inside.mean() >= ON_INSIDE_FRAC and np.median(area(b)) > np.median(area(a)):
        return "on"
    if _gap(a, b) <= ADJACENT_GAP_FRAC * side:
        return "adjacent_to"
    return compass_relation((*a[:, :2].min(0), *a[:, 2:].max(0)), (*b[:, :2].min(0), *b[:, 2:].max(0)))


def compass_relation(a: Sequence[float], b: Sequence[float]) -> str | None:
    """``north_of`` / ``south_of`` / ``west_of`` / ``east_of`` when box ``a`` (x0, y0, x1, y1; y grows
    southwards) lies wholly on that side of box ``b``, else None (synthrs' rule too)."""
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = a, b
    if ay1 <= by0:
        return "north_of"
    if ay0 >= by1:
        return "south_of"
    if ax1 <= bx0:
        return "west_of"
    if ax0 >= bx1:
        return "east_of"
    return None


def graph_from_boxes(boxes: Sequence[Box], width: float, height: float, scene: str | None = None,
                     relations: Sequence[tuple[int, str, int]] = (), spatial: bool = True) -> ImageSceneGraph:
    """The A.1.2 scene graph of one image from its boxes (see the module docstring).

    ``relations``: given (subject box index, relation, object box index) triplets, e.g. STAR's; they become
    edges between the boxes' type nodes (one per type pair and relation). ``spatial``: also derive relations
    from the geometry for type pairs no given relation links. Types are numbered in order of first box.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width} x {height}")
    scene_label = scene or UNKNOWN_SCENE
    by_type: dict[str, list[Box]] = {}
    for b in boxes:
        by_type.setdefault(b.category, []).append(b)
    ids = {name: i for i, name in enumerate(by_type)}
    objects, out, counts = [], [], {}
    for name, group in by_type.items():
        counts[name] = len(group)
        sizes = sorted({size_class(b.area, width * height) for b in group})
        centres = np.array([b.centre for b in group])
        objects.append(SceneObject(id=ids[name], name=name, attributes={
            "size": "/".join(sizes), "count": str(len(group)), "position": position(centres, width, height)}))
        out.append(Relation(subject=name, relation="inside", object=scene_label, subject_id=ids[name],
                            object_id=SCENE_NODE_ID))
    linked: set[frozenset[int]] = set()
    seen: set[tuple[int, str, int]] = set()
    for si, rel, oi in relations:
        s, o = ids[boxes[si].category], ids[boxes[oi].category]
        if s == o or (s, rel, o) in seen:  # a relation between two boxes of one type has no edge between types
            continue
        seen.add((s, rel, o))
        linked.add(frozenset((s, o)))
        out.append(Relation(subject=boxes[si].category, relation=rel, object=boxes[oi].category, subject_id=s, object_id=o))
    if spatial and len(by_type) > 1:
        xyxy = {name: np.array([b.bounds for b in group]) for name, group in by_type.items()}
        cands = [(a, r, b) for a in by_type for b in by_type if a != b
                 and (r := spatial_relation(xyxy[a], xyxy[b], max(width, height))) is not None]
        cands.sort(key=lambda arb: (SPATIAL_RELATIONS.index(arb[1]), ids[arb[0]], ids[arb[2]]))
        kept: Counter[str] = Counter()
        for a, r, b in cands:  # most specific first, one per pair, at most MAX_SPATIAL_PER_SUBJECT per subject
            if frozenset((ids[a], ids[b])) in linked or kept[a] == MAX_SPATIAL_PER_SUBJECT:
                continue
            linked.add(frozenset((ids[a], ids[b])))
            kept[a] += 1
            out.append(Relation(subject=a, relation=r, object=b, subject_id=ids[a], object_id=ids[b]))
    return ImageSceneGraph(scene=scene_label, object_counts=counts, objects=objects, relations=out)


def normalise_category(raw: str, category_map: dict[str, str] | None = None) -> str:
    """A category as a node name: ``category_map`` first (exact raw name), else lower case with '-' and '_'
    as spaces ('storage-tank' -> 'storage tank', 'small-vehicle' -> 'small vehicle')."""
    if category_map and raw in category_map:
        return category_map[raw]
    return " ".join(raw.replace("-", " ").replace("_", " ").lower().split())
