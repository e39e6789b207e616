"""Reader of NWPU-Captions ``dataset_nwpu.json`` (class-keyed JSON, 5 captions per image).

Structure, as documented in shared/data/SOURCES.md (seen only in a third-party docstring, not
verified against the real file)::

    {"airplane": [{"filename": "airplane_001.jpg", "imgid": 0, "split": "train",
                   "raw": "...", "sentids": 0, "raw_1": "...", "sentids_1": 1, ..., "raw_4": "...", "sentids_4": 4}, ...],
     "airport": [...], ...}

The reader is tolerant: any ``raw`` / ``raw_<k>`` keys present are captions (in k order), ``sentids``
/ ``sentids_<k>`` are optional (an int, or a one-element list). Images live in
``image_root/<class>/<filename>`` (NWPU-RESISC45 layout) or, when that class folder does not exist,
in ``image_root/<filename>``. ``scene_label`` is the class key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rsretrieval.data._common import (
    abs_uri,
    add_caption,
    build_dataset,
    caption_text,
    check_split,
    read_json,
    require_dir,
    require_file,
    verify_image_files,
)
from rsretrieval.data.errors import DatasetFormatError
from rsretrieval.data.schema import RSDataset

_RAW_KEY = re.compile(r"^raw(?:_(\d+))?$")


def _verify(annotations: Path, image_root: Path) -> tuple[Path, Path]:
    """Check the annotation file and the image folder exist, saying what goes where."""
    ann = require_file(
        annotations, "NWPU-Captions annotation file",
        "Download dataset_nwpu.json (NWPU-Captions) and point `annotations` to it.",
    )
    root = require_dir(
        image_root, "NWPU image folder",
        "Extract NWPU_images (NWPU-RESISC45 layout: <class>/<class>_NNN.jpg) there, "
        "or point `image_root` to that folder.",
    )
    return ann, root


def _sentids(item: dict[str, Any], raw_keys: list[tuple[int, str]], path: Path, entry: str) -> list[Any]:
    """The sentid of each caption (None where absent).

    ``sentids<suffix>`` belongs to ``raw<suffix>`` (an int/str or a one-element list); a plain
    ``sentids`` list with one id per caption (Karpathy style) is also accepted.
    """
    plain = item.get("sentids")
    if isinstance(plain, list) and len(plain) == len(raw_keys) > 1 and not any(
        f"sentids_{k}" in item for k, _ in raw_keys
    ):
        values: list[Any] = list(plain)
    else:
        values = []
        for _, key in raw_keys:
            value = item.get(f"sentids{key[len('raw'):]}")
            if isinstance(value, list):
                value = value[0] if len(value) == 1 else None
            values.append(value)
    for value, (_, key) in zip(values, raw_keys):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, str))):
            raise DatasetFormatError(path, f'{entry}."{key}"', f"invalid sentid: {value!r}")
    return values


def read_nwpu(
    annotations: Path,
    image_root: Path,
    dataset: str = "nwpu",
    verify_images: bool = True,
) -> RSDataset:
    """Read NWPU-Captions (class-keyed JSON) into the common tables."""
    annotations, image_root = _verify(annotations, image_root)
    doc = read_json(annotations)
    if not isinstance(doc, dict) or not doc:
        raise DatasetFormatError(annotations, None, "expected a JSON object {class name: [image entries]}")

    image_rows: list[dict[str, Any]] = []
    caption_rows: list[dict[str, Any]] = []
    seen_images: dict[str, str] = {}
    seen_captions: dict[str, str] = {}
    for cls, items in doc.items():
        if not isinstance(items, list):
            raise DatasetFormatError(annotations, f'"{cls}"', f"expected a list of image entries, got {type(items).__name__}")
        class_dir = image_root / cls
        folder = cls if class_dir.is_dir() else ""
        for i, item in enumerate(items):
            entry = f'"{cls}"[{i}]'
            if not isinstance(item, dict):
                raise DatasetFormatError(annotations, entry, f"expected an object, got {type(item).__name__}")
            filename = item.get("filename")
            if not isinstance(filename, str) or not filename.strip():
                raise DatasetFormatError(annotations, entry, f'missing or invalid "filename": {filename!r}')
            entry = f'"{cls}"[{i}] ({filename})'
            split = check_split(item.get("split"), annotations, entry)
            image_id = f"{dataset}:{filename}"
            if image_id in seen_images:
                raise DatasetFormatError(annotations, entry, f"file name {filename!r} already used by {seen_images[image_id]}")
            seen_images[image_id] = entry
            raw_keys = sorted(
                ((int(m.group(1) or 0), key) for key in item if (m := _RAW_KEY.match(key))), key=lambda t: t[0]
            )
            if not raw_keys:
                raise DatasetFormatError(annotations, entry, 'no caption: expected "raw" and/or "raw_1".."raw_k" keys')
            image_rows.append(
                {"image_id": image_id, "dataset": dataset, "split": split,
                 "uri": abs_uri(image_root, f"{folder}/{filename}" if folder else filename), "scene_label": cls}
            )
            sentids = _sentids(item, raw_keys, annotations, entry)
            for (k, key), sentid in zip(raw_keys, sentids):
                k_entry = f'{entry}."{key}"'
                text = caption_text(item[key], annotations, k_entry)
                caption_id = f"{dataset}:{sentid}" if sentid is not None else f"{image_id}#{k}"
                add_caption(caption_rows, seen_captions, caption_id, image_id, text, split, annotations, k_entry)
    if not image_rows:
        raise DatasetFormatError(annotations, None, "no image entries found")
    if verify_images:
        verify_image_files(image_rows, image_root, dataset)
    return build_dataset(dataset, image_rows, caption_rows, annotations)
