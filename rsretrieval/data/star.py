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
from collections.abc import Collection, Mapping
from pathlib import Path

from rsretrieval.data.boxes import BoxFilter, BoxCollector
from rsretrieval.data.errors import DatasetNotFoundError
from rsretrieval.data.schema import SkippedEntry
from rsretrieval.graphs.from_boxes import graph_from_boxes, normalise_category
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


def star_scene_graphs(path: Path | str, split: str | None = None, categories: Collection[str] | None = None,
                      category_map: Mapping[str, str] | None = None,
                      spatial: bool = False) -> tuple[dict[str, ImageSceneGraph], list[SkippedEntry]]:
    """Image file name -> scene graph of every STAR image under ``path`` (a split folder, or the root with
    ``split``), and the entries left out. ``spatial``: also add geometric relations between types no expert
    triplet links (off: the expert graph as given)."""
    d = _split_dir(Path(path), split)
    graphs: dict[str, ImageSceneGraph] = {}
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
        for k, s in enumerate(shapes):
            entry = f"shape {k}"
            try:
                pts = [(float(x), float(y)) for x, y in s["points"]]
                label = str(s["label"])
                if len(pts) < 2:
                    raise ValueError(f"{len(pts)} points")
            except (KeyError, TypeError, ValueError) as exc:
                col.skip(f, entry, "malformed", f"shape needs a label and 2+ points (rectangle corners or polygon): {exc!r}")
                continue
            if len(pts) == 2:  # LabelMe rectangle: two opposite corners
                pts = [pts[0], (pts[1][0], pts[0][1]), pts[1], (pts[0][0], pts[1][1])]
            gid = None if s.get("group_id") is None else str(s["group_id"])
            if col.add(f, entry, f.stem, label, pts, None, gid):
                groups.append((col.images[f.stem].boxes[-1].category, gid))
        skipped += col.skipped
        boxes = col.images[f.stem].boxes if f.stem in col.images else []
        if not boxes:
            skipped.append(SkippedEntry(str(f), "file", "empty", "no objects left in this image"))
            continue
        rel_file = d / "relationship" / f"{f.stem}.csv"
        rels = _relations(rel_file, groups, category_map, skipped) if rel_file.is_file() else []
        graphs[name] = graph_from_boxes(boxes, w, h, None, rels, spatial)
    return graphs, skipped
