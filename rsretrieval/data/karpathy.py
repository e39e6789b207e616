"""Reader of Karpathy-style caption JSON: RSICD ``dataset_rsicd.json``, UCM / Sydney ``dataset.json``,
RSITMD ``dataset_RSITMD.json``.

Structure (see shared/data/SOURCES.md, "Key structures")::

    {"images": [{"filename": "1.tif", "imgid": 0, "split": "train",
                 "sentences": [{"tokens": [...], "raw": "There is a piece of farmland .", "imgid": 0, "sentid": 0}, ...],
                 "sentids": [0, ...]}, ...],
     "dataset": "UCM"}

Caption text is ``raw`` stripped (``tokens`` are ignored). Duplicate caption texts are kept as rows
and listed in the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rsretrieval.data._common import (
    abs_uri,
    add_caption,
    build_dataset,
    caption_text,
    check_split,
    class_from_filename,
    read_json,
    require_dir,
    require_file,
    verify_image_files,
)
from rsretrieval.data.errors import DatasetFormatError
from rsretrieval.data.schema import RSDataset

SPLIT_ALIASES = {"restval": "train"}  # Karpathy's "restval" (val images used for training)


def _verify(annotations: Path, image_root: Path) -> tuple[Path, Path]:
    """Check the annotation file and the image folder exist (torchgeo-style), saying what goes where."""
    annotations = Path(annotations).expanduser()
    if annotations.is_dir():
        found = sorted(annotations.glob("dataset*.json"))
        if len(found) == 1:
            annotations = found[0]
    ann = require_file(
        annotations, "Karpathy-style annotation file",
        "Put the dataset's caption JSON there (RSICD: dataset_rsicd.json, UCM / Sydney: dataset.json, "
        "RSITMD: dataset_RSITMD.json) or point `annotations` to it.",
    )
    root = require_dir(
        image_root, "Image folder",
        "Put the dataset's image files there (e.g. UCM 1.tif..2100.tif, RSICD airport_1.jpg, ...), "
        "with the file names used in the annotation JSON, or point `image_root` to that folder.",
    )
    return ann, root


def _dataset_name(doc: dict[str, Any], annotations: Path, dataset: str | None) -> str:
    if dataset:
        return dataset
    name = doc.get("dataset")
    if isinstance(name, str) and name.strip():
        return name.strip().lower()
    stem = annotations.stem.lower()
    return stem.removeprefix("dataset_") if stem != "dataset" else annotations.parent.name.lower()


def read_karpathy(
    annotations: Path,
    image_root: Path,
    dataset: str | None = None,
    verify_images: bool = True,
) -> RSDataset:
    """Read a Karpathy-style JSON; ``dataset`` defaults to the JSON's ``"dataset"`` key lowercased."""
    annotations, image_root = _verify(annotations, image_root)
    doc = read_json(annotations)
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise DatasetFormatError(annotations, None, 'expected a JSON object with an "images" list (Karpathy format)')
    name = _dataset_name(doc, annotations, dataset)

    image_rows: list[dict[str, Any]] = []
    caption_rows: list[dict[str, Any]] = []
    seen_images: dict[str, int] = {}
    seen_captions: dict[str, str] = {}
    warnings: list[str] = []
    aliased: dict[str, int] = {}
    for i, item in enumerate(doc["images"]):
        entry = f"images[{i}]"
        if not isinstance(item, dict):
            raise DatasetFormatError(annotations, entry, f"expected an object, got {type(item).__name__}")
        filename = item.get("filename")
        if not isinstance(filename, str) or not filename.strip():
            raise DatasetFormatError(annotations, entry, f'missing or invalid "filename": {filename!r}')
        entry = f"images[{i}] ({filename})"
        raw_split = item.get("split")
        split = check_split(raw_split, annotations, entry, SPLIT_ALIASES)
        if raw_split != split:
            aliased[raw_split] = aliased.get(raw_split, 0) + 1
        image_id = f"{name}:{filename}"
        if image_id in seen_images:
            raise DatasetFormatError(
                annotations, entry, f"file name {filename!r} already used by images[{seen_images[image_id]}]"
            )
        seen_images[image_id] = i
        sentences = item.get("sentences")
        if not isinstance(sentences, list) or not sentences:
            raise DatasetFormatError(annotations, entry, 'missing or empty "sentences" list')
        image_rows.append(
            {"image_id": image_id, "dataset": name, "split": split, "uri": abs_uri(image_root, filename),
             "scene_label": class_from_filename(filename)}
        )
        for k, sent in enumerate(sentences):
            s_entry = f"images[{i}].sentences[{k}] ({filename})"
            if not isinstance(sent, dict) or "raw" not in sent:
                raise DatasetFormatError(annotations, s_entry, 'missing "raw" caption text')
            text = caption_text(sent["raw"], annotations, s_entry)
            sentid = sent.get("sentid")
            caption_id = f"{name}:{sentid}" if sentid is not None else f"{image_id}#{k}"
            add_caption(caption_rows, seen_captions, caption_id, image_id, text, split, annotations, s_entry)
    if not image_rows:
        raise DatasetFormatError(annotations, "images", "no images listed")
    for alias, count in aliased.items():
        warnings.append(f'split "{alias}" mapped to "{SPLIT_ALIASES[alias]}" for {count} images')
    if verify_images:
        verify_image_files(image_rows, image_root, name)
    return build_dataset(name, image_rows, caption_rows, annotations, warnings)
