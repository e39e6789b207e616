"""Readers of object-box files, one function per published format, into :class:`ImageBoxes` per image:

* :func:`read_dota`: DOTA label files (``x1 y1 x2 y2 x3 y3 x4 y4 category difficult`` per line, optional
  ``imagesource:`` / ``gsd:`` header lines; one ``<image stem>.txt`` per image) and DOTA Task1 result files
  (``Task1_<category>.txt``: ``<image stem> <score> x1 y1 ... y4`` per line: detector output);
* :func:`read_dior`: DIOR's Pascal-VOC XML (``<object><name>`` with ``<bndbox>`` horizontal boxes, or DIOR-R's
  ``<robndbox>`` corner points), one ``<image stem>.xml`` per image, image size from ``<size>``;
* :func:`read_coco`: COCO JSON (``images`` / ``annotations`` with ``bbox = [x, y, w, h]`` / ``categories``), also
  a COCO results list (``[{"image_id", "category_id", "bbox", "score"}]``) next to a ``categories_from`` file;
* :func:`read_det_json`: GraVLM-style ``det_json`` folders, one ``<image stem>.json`` per image holding a list of
  detections (see ``tests/data/boxes/PROVENANCE.md`` for the accepted fields: GraVLM does not publish them).

Bad entries (a malformed line, a box outside the image, an unknown category when ``categories`` is set, an
empty detection file) become :class:`SkippedEntry` rows naming file and line; the rest is kept. Images are keyed
by file stem (DOTA and det_json files do not name the extension); image sizes come from the file where the
format has them, else from ``image_sizes`` (stem -> (width, height)) or stay None (no bounds check).
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsretrieval.data.errors import DatasetNotFoundError
from rsretrieval.data.schema import SkippedEntry
from rsretrieval.graphs.from_boxes import Box, normalise_category

BOUNDS_TOLERANCE_PX = 2.0  # annotations of objects cut by the image edge reach a pixel or two outside


@dataclass
class ImageBoxes:
    """The boxes of one image and its size (None when the format does not carry it)."""

    name: str  # image file stem
    boxes: list[Box] = field(default_factory=list)
    width: float | None = None
    height: float | None = None
    scene: str | None = None


@dataclass
class BoxRead:
    """What a reader returns: the images with at least one kept box, and what it skipped (file + line each)."""

    images: dict[str, ImageBoxes]
    skipped: list[SkippedEntry]
    dropped_low_score: int = 0  # detections under min_score (not errors)


@dataclass
class BoxFilter:
    """Shared options of every reader: names, allowed categories, score threshold, known image sizes."""

    category_map: Mapping[str, str] | None = None  # raw category -> node name
    categories: Collection[str] | None = None  # allowed node names (after mapping); None = any
    min_score: float = 0.0
    image_sizes: Mapping[str, tuple[float, float]] | None = None  # stem -> (width, height)


class BoxCollector:
    """Checks each box and files it under its image, or records why not."""

    def __init__(self, flt: BoxFilter) -> None:
        self.flt, self.images, self.skipped, self.low = flt, {}, [], 0  # type: ignore[var-annotated]

    def image(self, stem: str, width: float | None = None, height: float | None = None) -> ImageBoxes:
        if stem not in self.images:
            w, h = (width, height) if width else (self.flt.image_sizes or {}).get(stem, (None, None))
            self.images[stem] = ImageBoxes(stem, [], w, h)
        return self.images[stem]

    def skip(self, source: Path | str, entry: str, kind: str, detail: str) -> None:
        self.skipped.append(SkippedEntry(str(source), entry, kind, detail))

    def add(self, source: Path | str, entry: str, stem: str, raw_category: str, polygon: list[tuple[float, float]],
            score: float | None = None, key: str | None = None) -> bool:
        if not all(math.isfinite(v) for p in polygon for v in p):
            self.skip(source, entry, "malformed", "non-finite coordinate")
            return False
        if score is not None and score < self.flt.min_score:
            self.low += 1
            return False
        name = normalise_category(raw_category, dict(self.flt.category_map or {}))
        if self.flt.categories is not None and name not in self.flt.categories:
            self.skip(source, entry, "unknown_category", f"category {raw_category!r} is not in the configured "
                      f"categories ({', '.join(sorted(self.flt.categories))})")
            return False
        img = self.image(stem)
        box = Box(name, tuple(polygon), score, key)
        x0, y0, x1, y1 = box.bounds
        t = BOUNDS_TOLERANCE_PX
        if x1 <= x0 or y1 <= y0:
            self.skip(source, entry, "malformed", f"empty box {box.bounds}")
            return False
        if img.width and img.height and (x0 < -t or y0 < -t or x1 > img.width + t or y1 > img.height + t):
            self.skip(source, entry, "outside_image", f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) lies outside the "
                      f"{img.width:g} x {img.height:g} image")
            return False
        img.boxes.append(box)
        return True

    def result(self) -> BoxRead:
        return BoxRead({k: v for k, v in self.images.items() if v.boxes}, self.skipped, self.low)


def _files(path: Path, suffix: str) -> list[Path]:
    path = Path(path)
    if not path.exists():
        raise DatasetNotFoundError("box annotations", path, "Set datasets[].boxes.path to the file or folder.")
    return sorted(path.glob(f"*{suffix}")) if path.is_dir() else [path]


def _floats(parts: list[str]) -> list[float]:
    return [float(p) for p in parts]


def _corners(v: list[float]) -> list[tuple[float, float]]:
    return [(v[i], v[i + 1]) for i in range(0, len(v), 2)]


def read_dota(path: Path | str, flt: BoxFilter | None = None) -> BoxRead:
    """DOTA label files (a folder of ``<stem>.txt`` or one file) or Task1 result files (``Task1_<category>.txt``)."""
    col = BoxCollector(flt or BoxFilter())
    for f in _files(Path(path), ".txt"):
        task1 = f.name.startswith("Task1_")
        lines = f.read_text(encoding="utf-8", errors="replace").splitlines()
        kept = 0
        for n, line in enumerate(lines, 1):
            parts, entry = line.split(), f"line {n}"
            if not parts or line.startswith(("imagesource:", "gsd:")):
                continue
            try:
                if task1:  # <stem> <score> x1 y1 ... y4; the category is in the file name
                    stem, score, coords, cat = parts[0], float(parts[1]), _floats(parts[2:10]), f.stem[len("Task1_"):]
                    ok = len(parts) == 10
                else:  # x1 y1 ... y4 category [difficult]
                    stem, score, coords, cat = f.stem, None, _floats(parts[:8]), parts[8] if len(parts) > 8 else ""
                    ok = len(parts) in (9, 10)
            except (ValueError, IndexError):
                ok = False
            if not ok:
                want = "<image> <score> x1 y1 x2 y2 x3 y3 x4 y4" if task1 else "x1 y1 x2 y2 x3 y3 x4 y4 category difficult"
                col.skip(f, entry, "malformed", f"expected '{want}', got {line.strip()[:80]!r}")
                continue
            kept += col.add(f, entry, stem, cat, _corners(coords), score)
        if not task1 and kept == 0 and not any(s.source == str(f) for s in col.skipped):
            col.skip(f, "file", "empty", "no boxes in this label file")
    return col.result()


def read_dior(path: Path | str, flt: BoxFilter | None = None) -> BoxRead:
    """DIOR / DIOR-R Pascal-VOC XML files (a folder of ``<stem>.xml`` or one file)."""
    import xml.etree.ElementTree as ET

    col = BoxCollector(flt or BoxFilter())
    for f in _files(Path(path), ".xml"):
        try:
            root = ET.parse(f).getroot()
        except ET.ParseError as exc:
            col.skip(f, f"line {exc.position[0]}", "malformed", f"not valid XML: {exc}")
            continue
        stem = Path(root.findtext("filename") or f.stem).stem
        size = root.find("size")
        try:
            w, h = (float(size.findtext("width", "")), float(size.findtext("height", ""))) if size is not None else (None, None)
        except ValueError:
            w = h = None
        col.image(stem, w, h)
        objs = root.findall("object")
        if not objs:
            col.skip(f, "file", "empty", "no <object> in this annotation")
        for k, obj in enumerate(objs):
            entry, name = f"object {k}", (obj.findtext("name") or "").strip()
            hb, rb = obj.find("bndbox"), obj.find("robndbox")
            try:
                if hb is not None:
                    x0, y0, x1, y1 = (float(hb.findtext(t, "")) for t in ("xmin", "ymin", "xmax", "ymax"))
                    poly = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
                elif rb is not None:
                    poly = [(float(rb.findtext(f"x_{c}", "")), float(rb.findtext(f"y_{c}", "")))
                            for c in ("left_top", "right_top", "right_bottom", "left_bottom")]
                else:
                    raise ValueError("no <bndbox> or <robndbox>")
            except ValueError as exc:
                col.skip(f, entry, "malformed", f"bad box of <object> {name!r}: {exc}")
                continue
            col.add(f, entry, stem, name, poly)
    return col.result()


def _coco_categories(data: Any) -> dict[int, str]:
    return {int(c["id"]): str(c["name"]) for c in (data.get("categories") or [])} if isinstance(data, dict) else {}


def read_coco(path: Path | str, flt: BoxFilter | None = None, categories_from: Path | str | None = None) -> BoxRead:
    """A COCO annotation file, or a COCO results list (detector output) with ``categories_from`` naming the
    annotation file that holds its ``images`` and ``categories``."""
    col = BoxCollector(flt or BoxFilter())
    path = _files(Path(path), ".json")[0]
    data = json.loads(path.read_text(encoding="utf-8"))
    meta = json.loads(Path(categories_from).read_text(encoding="utf-8")) if categories_from else data
    if isinstance(meta, list):
        raise ValueError(f"{path}: a COCO results list needs categories_from (the annotation file with images and categories)")
    cats = _coco_categories(meta)
    images = {}
    for img in meta.get("images") or []:
        stem = Path(str(img.get("file_name", img.get("id")))).stem
        images[img["id"]] = stem
        col.image(stem, float(img["width"]) if img.get("width") else None, float(img["height"]) if img.get("height") else None)
    anns = data if isinstance(data, list) else data.get("annotations") or []
    for k, a in enumerate(anns):
        entry = f"annotation {k}" + (f" (id {a['id']})" if isinstance(a, dict) and "id" in a else "")
        try:
            x, y, w, h = (float(v) for v in a["bbox"])
            stem, cid = images[a["image_id"]], int(a["category_id"])
        except (KeyError, TypeError, ValueError) as exc:
            col.skip(path, entry, "malformed", f"needs image_id (listed in images), category_id and bbox [x, y, w, h]: {exc!r}")
            continue
        if cid not in cats:
            col.skip(path, entry, "unknown_category", f"category_id {cid} is not in the file's categories")
            continue
        col.add(path, entry, stem, cats[cid], [(x, y), (x + w, y), (x + w, y + h), (x, y + h)],
                float(a["score"]) if "score" in a else None)
    return col.result()


def _det_polygon(d: dict[str, Any]) -> list[tuple[float, float]]:
    """A detection's outline from the fields det_json files use (see PROVENANCE.md)."""
    if "poly" in d or "polygon" in d:
        v = [float(x) for x in (d.get("poly") or d.get("polygon"))]  # type: ignore[union-attr]
        v = [c for p in v for c in p] if v and isinstance(v[0], list) else v
        if len(v) != 8:
            raise ValueError(f"poly needs 8 numbers, got {len(v)}")
        return _corners(v)
    if "rbox" in d or "obb" in d:  # mmrotate (cx, cy, w, h, angle in radians)
        cx, cy, w, h, a = (float(x) for x in (d.get("rbox") or d.get("obb")))  # type: ignore[union-attr]
        return list(Box.rotated("", cx, cy, w, h, a).polygon)
    x0, y0, x1, y1 = (float(x) for x in d["bbox"])  # horizontal xyxy
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _det_items(data: Any) -> Iterator[dict[str, Any]]:
    items = data.get("objects", data.get("detections")) if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ValueError("expected a list of detections, or an object with 'objects' / 'detections'")
    yield from items


def read_det_json(path: Path | str, flt: BoxFilter | None = None) -> BoxRead:
    """A ``det_json`` folder (GraVLM layout): one ``<image stem>.json`` of detections per image."""
    col = BoxCollector(flt or BoxFilter())
    for f in _files(Path(path), ".json"):
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
            items = list(_det_items(data))
        except ValueError as exc:
            col.skip(f, "file", "malformed", f"not a det_json detection list: {exc}")
            continue
        if isinstance(data, dict) and data.get("width"):
            col.image(f.stem, float(data["width"]), float(data["height"]))
        if not items:
            col.skip(f, "file", "empty", "no detections in this file")
        for k, d in enumerate(items):
            entry = f"detection {k}"
            try:
                cat = str(d.get("label", d.get("category", d.get("class"))))
                poly, score = _det_polygon(d), (float(d["score"]) if "score" in d else None)
                if cat == "None":
                    raise KeyError("label")
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                col.skip(f, entry, "malformed", f"needs label and poly / rbox / bbox: {exc!r}")
                continue
            col.add(f, entry, f.stem, cat, poly, score)
    return col.result()


READERS = {"dota": read_dota, "dior": read_dior, "coco": read_coco, "det_json": read_det_json}
