"""STAR's expert scene graphs (Li et al. 2024, "STAR: A first-ever dataset and a large-scale benchmark for scene
graph generation in large-size satellite imagery"; thesis ref. [17]) as A.1.2 image graphs.

STAR's raw annotation layout per split (as its ``StarDataset`` loader reads it; ``tests/data/boxes/PROVENANCE.md``)::

    <split>/img/<stem>.png
    <split>/object-json/<stem>.json    LabelMe JSON: imageWidth, imageHeight, imagePath and "shapes", each
                                       {"label", "points": [[x, y] x 4] (oriented box corners), "group_id", ...}
    <split>/relationship/<stem>.csv    header subject,subject_ID,relationship,object,object_ID (IDs = group_id)

Objects become type nodes with counts and sizes, the expert triplets become relations between the types
(:func:`rsretrieval.graphs.from_boxes.graph_from_boxes`); a triplet whose IDs name no object of the stated
categories, a malformed CSV row, a box outside the image or an unknown category (when ``categories`` is set)
is reported as a :class:`SkippedEntry` naming file and line, and the rest is kept.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from rsretrieval.data.boxes import BoxFilter, BoxCollector
from rsretrieval.data.errors import DatasetNotFoundError
from rsretrieval.data.schema import SkippedEntry
from rsretrieval.graphs.from_boxes import Box, graph_from_boxes, normalise_category
from rsretrieval.graphs.schema import ImageSceneGraph

REL_COLUMNS = ("subject", "subject_ID", "relationship", "object", "object_ID")


def _split_dir(path: Path, split: str | None) -> Path:
    d = path / split if split else path
    if not (d / "object-json").is_dir():
        raise DatasetNotFoundError("STAR object-json folder", d / "object-json",
                                   "Point the path at a STAR split folder (holding object-json/ and relationship/), "
                                   "or at the dataset root and name the split.")
    return d


def _relations(csv_path: Path, groups: list[tuple[str, str | None]], cmap: Mapping[str, str] | None,
               skipped: list[SkippedEntry]) -> list[tuple[int, str, int]]:
    """(subject box, relation, object box) of every CSV row; rows naming no such boxes are skipped."""
    out: list[tuple[int, str, int]] = []
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REL_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            skipped.append(SkippedEntry(str(csv_path), "line 1", "malformed", f"missing columns {missing}"))
            return out
        for n, row in enumerate(reader, 2):
            rel = (row["relationship"] or "").strip()
            subj = [i for i, (c, g) in enumerate(groups) if g == (row["subject_ID"] or "").strip()
                    and c == normalise_category(row["subject"] or "", dict(cmap or {}))]
            obj = [i for i, (c, g) in enumerate(groups) if g == (row["object_ID"] or "").strip()
                   and c == normalise_category(row["object"] or "", dict(cmap or {}))]
            if not rel or not subj or not obj:
                skipped.append(SkippedEntry(str(csv_path), f"line {n}", "unknown_object",
                                            f"relationship {rel!r} names no kept object {row['subject']!r} #{row['subject_ID']} "
                                            f"-> {row['object']!r} #{row['object_ID']}" if rel else "empty relationship"))
                continue
            out += [(s, rel.replace(" ", "_"), o) for s in subj for o in obj]
    return out


@dataclass
class StarScene:
    """One STAR image: its size, kept boxes and expert triplets (indices into ``boxes``)."""

    name: str
    width: float
    height: float
    boxes: list[Box]
    relations: list[tuple[int, str, int]]


def star_scenes(path: Path | str, split: str | None = None, categories: Collection[str] | None = None,
                category_map: Mapping[str, str] | None = None) -> tuple[list[StarScene], list[SkippedEntry]]:
    """Every STAR image under ``path`` (a split folder, or the root with ``split``) with its boxes and
    triplets, and the entries left out (named by file and shape / line)."""
    d = _split_dir(Path(path), split)
    scenes: list[StarScene] = []
    skipped: list[SkippedEntry] = []
    for f in sorted((d / "object-json").glob("*.json")):
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
            w, h, shapes = float(data["imageWidth"]), float(data["imageHeight"]), data["shapes"]
        except (ValueError, KeyError, TypeError) as exc:
            skipped.append(SkippedEntry(str(f), "file", "malformed", f"not a LabelMe object file: {exc!r}"))
            continue
        name = Path(str(data.get("imagePath") or f.stem + ".png")).name
        col = BoxCollector(BoxFilter(category_map, categories, 0.0, {f.stem: (w, h)}))
        groups: list[tuple[str, str | None]] = []  # (category, group id) of each kept box, in box order
        for k, shape in enumerate(shapes):
            entry = f"shape {k}"
            try:
                pts = [(float(x), float(y)) for x, y in shape["points"]]
                label = str(shape["label"])
                if len(pts) < 2:
                    raise ValueError(f"{len(pts)} points")
            except (KeyError, TypeError, ValueError) as exc:
                col.skip(f, entry, "malformed", f"shape needs a label and 2+ points (rectangle corners or polygon): {exc!r}")
                continue
            if len(pts) == 2:  # LabelMe rectangle: two opposite corners
                pts = [pts[0], (pts[1][0], pts[0][1]), pts[1], (pts[0][0], pts[1][1])]
            gid = None if shape.get("group_id") is None else str(shape["group_id"])
            if col.add(f, entry, f.stem, label, pts, None, gid):
                groups.append((col.images[f.stem].boxes[-1].category, gid))
        skipped += col.skipped
        boxes = col.images[f.stem].boxes if f.stem in col.images else []
        if not boxes:
            skipped.append(SkippedEntry(str(f), "file", "empty", "no objects left in this image"))
            continue
        rel_file = d / "relationship" / f"{f.stem}.csv"
        rels = _relations(rel_file, groups, category_map, skipped) if rel_file.is_file() else []
        scenes.append(StarScene(name, w, h, list(boxes), rels))
    return scenes, skipped


def star_scene_graphs(path: Path | str, split: str | None = None, categories: Collection[str] | None = None,
                      category_map: Mapping[str, str] | None = None,
                      spatial: bool = False) -> tuple[dict[str, ImageSceneGraph], list[SkippedEntry]]:
    """Image file name -> scene graph of every STAR image under ``path`` (a split folder, or the root with
    ``split``), and the entries left out. ``spatial``: also add geometric relations between types no expert
    triplet links (off: the expert graph as given)."""
    scenes, skipped = star_scenes(path, split, categories, category_map)
    return {sc.name: graph_from_boxes(sc.boxes, sc.width, sc.height, None, sc.relations, spatial) for sc in scenes}, skipped


# FIT-RS patch names, as DOTA_devkit's ImgSplit writes them: <scene stem>__<patch size>__<left>___<top>.<ext>
PATCH_NAME = re.compile(r"^(?P<stem>.+)__(?P<size>\d+)__(?P<left>-?\d+)___(?P<top>-?\d+)\.\w+$")
MIN_KEPT_AREA = 0.5  # a box cut by the patch border stays in the patch when at least half of it lies inside


def _in_window(box: Box, left: float, top: float, size: float) -> Box | None:
    """``box`` in the patch's coordinates, clipped to it, or None when less than MIN_KEPT_AREA of it is inside."""
    x0, y0, x1, y1 = box.bounds
    cx0, cy0, cx1, cy1 = max(x0, left), max(y0, top), min(x1, left + size), min(y1, top + size)
    if cx1 <= cx0 or cy1 <= cy0 or (cx1 - cx0) * (cy1 - cy0) < MIN_KEPT_AREA * (x1 - x0) * (y1 - y0):
        return None
    if (cx0, cy0, cx1, cy1) == (x0, y0, x1, y1):  # wholly inside: keep its outline (rotated boxes stay rotated)
        return Box(box.category, tuple((x - left, y - top) for x, y in box.polygon), box.score, box.key)
    return Box.xyxy(box.category, cx0 - left, cy0 - top, cx1 - left, cy1 - top, box.score, box.key)


def fit_rs_patch_graphs(path: Path | str, patch_names: Collection[str], split: str | None = None,
                        spatial: bool = False) -> tuple[dict[str, ImageSceneGraph], list[str]]:
    """FIT-RS patch file name -> the ground-truth graph of that patch: the STAR scene's boxes that lie (mostly)
    inside the 512 px window its name gives, clipped to it, with the expert triplets between kept boxes.

    Returns the graphs and warnings (patch names that do not parse, scenes STAR does not have, patches with
    no object); STAR's own skipped entries are among the warnings, named by file and shape / line."""
    windows: dict[str, list[tuple[str, int, int, int]]] = {}
    warnings: list[str] = []
    bad = [n for n in patch_names if not PATCH_NAME.match(Path(n).name)]
    if bad:
        warnings.append(f"{len(bad)} image names are not FIT-RS patch names <scene>__<size>__<left>___<top> "
                        f"(e.g. {bad[0]!r}): no ground-truth graph")
    for n in patch_names:
        if m := PATCH_NAME.match(Path(n).name):
            windows.setdefault(m["stem"], []).append((n, int(m["size"]), int(m["left"]), int(m["top"])))
    scenes, skipped = star_scenes(path, split)
    warnings += [str(e) for e in skipped]
    graphs: dict[str, ImageSceneGraph] = {}
    empty = 0
    for sc in scenes:
        for name, size, left, top in windows.pop(Path(sc.name).stem, []):
            kept, index = [], {}
            for i, b in enumerate(sc.boxes):
                if (cut := _in_window(b, left, top, size)) is not None:
                    index[i] = len(kept)
                    kept.append(cut)
            if not kept:
                empty += 1
                continue
            rels = [(index[s], r, index[o]) for s, r, o in sc.relations if s in index and o in index]
            graphs[name] = graph_from_boxes(kept, size, size, None, rels, spatial)
    if windows:
        warnings.append(f"{sum(map(len, windows.values()))} patches of {len(windows)} scenes STAR does not have "
                        f"(e.g. scene {next(iter(windows))!r}): no ground-truth graph")
    if empty:
        warnings.append(f"{empty} patches hold no STAR object: no ground-truth graph")
    return graphs, warnings
