"""Reader of users' own data: a folder of images + a CSV or JSONL file with one row per caption.

Columns / keys: ``image`` (path relative to ``image_root``), ``caption``; optional ``split``
(train / val / test, default ``test``), ``scene_label`` and ``variant`` (original / fine_grained,
default ``original``). Every row of one image must agree on ``split`` and ``scene_label``.
Example CSV::

    image,caption,split,scene_label
    harbor/001.png,Many boats are moored in the harbor .,test,harbor
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Iterator

from rsretrieval.data._common import (
    abs_uri,
    build_dataset,
    caption_text,
    check_split,
    read_text,
    require_dir,
    require_file,
    verify_image_files,
)
from rsretrieval.data.errors import DatasetFormatError
from rsretrieval.data.schema import VARIANTS, RSDataset

REQUIRED = ("image", "caption")
OPTIONAL = ("split", "scene_label", "variant")
CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")


def _verify(annotations: Path, image_root: Path) -> tuple[Path, Path]:
    """Check the annotation file and the image folder exist, saying what goes where."""
    ann = require_file(
        annotations, "caption file",
        "Write a CSV (header image,caption[,split,scene_label,variant]) or a JSONL file with those keys, "
        "one row per caption, and point `annotations` to it.",
    )
    if ann.suffix.lower() not in CSV_SUFFIXES + JSONL_SUFFIXES:
        raise DatasetFormatError(ann, None, f"unknown file type {ann.suffix!r}: use .csv or .jsonl")
    root = require_dir(
        image_root, "Image folder",
        "Put your images there; the `image` column holds paths relative to this folder.",
    )
    return ann, root


def _csv_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(entry name, row) of a CSV file with a header line."""
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    header = reader.fieldnames or []
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise DatasetFormatError(path, "header (line 1)", f"missing column(s) {missing}; found {header}")
    for i, row in enumerate(reader, 1):
        if None in row:
            raise DatasetFormatError(path, f"row {i} (line {reader.line_num})", "more fields than header columns")
        yield f"row {i} (line {reader.line_num})", row


def _jsonl_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(entry name, object) of each non-empty line of a JSONL file."""
    for n, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DatasetFormatError(path, f"line {n}", f"invalid JSON: {e.msg} (column {e.colno})") from None
        if not isinstance(row, dict):
            raise DatasetFormatError(path, f"line {n}", f"expected a JSON object, got {type(row).__name__}")
        missing = [c for c in REQUIRED if c not in row]
        if missing:
            raise DatasetFormatError(path, f"line {n}", f"missing key(s) {missing}")
        yield f"line {n}", row


def _optional(row: dict[str, Any], key: str, default: str | None, path: Path, entry: str) -> str | None:
    value = row.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    if not isinstance(value, str):
        raise DatasetFormatError(path, entry, f"{key} must be a string, got {value!r}")
    return value.strip()


def read_custom(
    annotations: Path,
    image_root: Path,
    dataset: str = "custom",
    verify_images: bool = True,
) -> RSDataset:
    """Read a CSV / JSONL caption file (one row per caption) and its image folder."""
    annotations, image_root = _verify(annotations, image_root)
    rows = _csv_rows(annotations) if annotations.suffix.lower() in CSV_SUFFIXES else _jsonl_rows(annotations)
    images: dict[str, dict[str, Any]] = {}
    first_entry: dict[str, str] = {}
    counts: dict[str, int] = {}
    caption_rows: list[dict[str, Any]] = []
    for entry, row in rows:
        image = row.get("image")
        if not isinstance(image, str) or not image.strip():
            raise DatasetFormatError(annotations, entry, f"missing or invalid image path: {image!r}")
        image = image.strip()
        text = caption_text(row.get("caption"), annotations, entry)
        split = check_split(_optional(row, "split", "test", annotations, entry), annotations, entry)
        scene = _optional(row, "scene_label", None, annotations, entry)
        variant = _optional(row, "variant", "original", annotations, entry)
        if variant not in VARIANTS:
            raise DatasetFormatError(annotations, entry, f"unknown variant {variant!r} (expected one of {list(VARIANTS)})")
        image_id = f"{dataset}:{image}"
        if image_id in images:
            known = images[image_id]
            for key, value in (("split", split), ("scene_label", scene)):
                if known[key] != value:
                    raise DatasetFormatError(
                        annotations, entry,
                        f"{key} {value!r} of {image!r} disagrees with {known[key]!r} given at {first_entry[image_id]}",
                    )
        else:
            images[image_id] = {"image_id": image_id, "dataset": dataset, "split": split,
                                "uri": abs_uri(image_root, image), "scene_label": scene}
            first_entry[image_id] = entry
        k = counts.get(image_id, 0)
        counts[image_id] = k + 1
        caption_rows.append(
            {"caption_id": f"{image_id}#{k}", "image_id": image_id, "text": text, "variant": variant, "split": split}
        )
    if not caption_rows:
        raise DatasetFormatError(annotations, None, "no caption rows")
    image_rows = list(images.values())
    if verify_images:
        verify_image_files(image_rows, image_root, dataset)
    return build_dataset(dataset, image_rows, caption_rows, annotations)
