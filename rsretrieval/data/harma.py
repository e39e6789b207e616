"""Reader of the HarMA / PIR (ALBEF-style) finetune JSON: ``<name>_{train,val,test}.json``.

Structure (see shared/data/SOURCES.md, "Key structures")::

    train: [{"caption": str, "image": "train/<file>", "image_id": int, "label_name": str, "label": int}]  # 1 item per caption
    val:   [{"image": "val/<file>", "caption": [str x5], "label_name": str, "label": int}]
    test:  [{"image": "test/<file>", "caption": [str x5]}]

Both caption forms (string or list) are accepted in every split; items of one image are merged
(their captions are all kept, duplicates included). ``image`` is relative to ``image_root``;
``scene_label`` is ``label_name`` when present.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rsretrieval.data._common import (
    abs_uri,
    build_dataset,
    caption_text,
    read_json,
    require_dir,
    require_file,
    verify_image_files,
)
from rsretrieval.data.errors import DatasetFormatError, DatasetNotFoundError
from rsretrieval.data.schema import SPLITS, RSDataset

_FILE = re.compile(r"^(?P<name>.+)_(?P<split>train|val|test)$")


def _verify(annotations: Path, image_root: Path, dataset: str | None) -> tuple[list[tuple[Path, str]], Path, str]:
    """The (file, split) pairs to read, the image folder and the dataset name; missing paths raise."""
    annotations = Path(annotations).expanduser()
    hint = ("Point `annotations` to a HarMA finetune file (e.g. data/finetune/rsitmd_test.json) or to the "
            "folder holding <name>_train.json / <name>_val.json / <name>_test.json.")
    if annotations.is_dir():
        files = sorted(p for p in annotations.glob("*.json") if _FILE.match(p.stem))
        names = sorted({_FILE.match(p.stem)["name"] for p in files})  # type: ignore[index]
        if dataset is not None and dataset in names:
            names = [dataset]
        if len(names) != 1:
            raise DatasetNotFoundError(
                "one set of <name>_{train,val,test}.json files" + (f" (found {names})" if names else ""),
                annotations, hint + " Pass `dataset` to choose one set.",
            )
        pairs = [(p, _FILE.match(p.stem)["split"]) for p in files if _FILE.match(p.stem)["name"] == names[0]]  # type: ignore[index]
        name = names[0]
    else:
        require_file(annotations, "HarMA finetune JSON", hint)
        m = _FILE.match(annotations.stem)
        if not m:
            raise DatasetFormatError(annotations, None, "file name must end in _train.json, _val.json or _test.json")
        pairs, name = [(annotations, m["split"])], m["name"]
    root = require_dir(
        image_root, "Image folder",
        "Put the images there as train/<file>, val/<file>, test/<file> (the `image` paths of the JSON).",
    )
    pairs.sort(key=lambda p: SPLITS.index(p[1]))
    return pairs, root, (dataset or name.lower())


def read_harma(
    annotations: Path,
    image_root: Path,
    dataset: str | None = None,
    verify_images: bool = True,
) -> RSDataset:
    """Read one HarMA finetune file, or every split file of a folder; ``dataset`` defaults to the file prefix."""
    pairs, image_root, name = _verify(annotations, image_root, dataset)
    images: dict[str, dict[str, Any]] = {}
    where: dict[str, str] = {}
    counts: dict[str, int] = {}
    caption_rows: list[dict[str, Any]] = []
    for path, split in pairs:
        items = read_json(path)
        if not isinstance(items, list):
            raise DatasetFormatError(path, None, "expected a JSON list of items")
        for i, item in enumerate(items):
            entry = f"[{i}]"
            if not isinstance(item, dict):
                raise DatasetFormatError(path, entry, f"expected an object, got {type(item).__name__}")
            image = item.get("image")
            if not isinstance(image, str) or not image.strip():
                raise DatasetFormatError(path, entry, f'missing or invalid "image": {image!r}')
            entry = f"[{i}] ({image})"
            if "caption" not in item:
                raise DatasetFormatError(path, entry, 'missing "caption"')
            caps = item["caption"] if isinstance(item["caption"], list) else [item["caption"]]
            if not caps:
                raise DatasetFormatError(path, entry, 'empty "caption" list')
            label = item.get("label_name")
            label = None if label is None else str(label)
            image_id = f"{name}:{image}"
            if image_id in images:
                if images[image_id]["split"] != split or images[image_id]["scene_label"] != label:
                    raise DatasetFormatError(
                        path, entry, f"split/label_name of {image!r} disagree with {where[image_id]}"
                    )
            else:
                images[image_id] = {"image_id": image_id, "dataset": name, "split": split,
                                    "uri": abs_uri(image_root, image), "scene_label": label}
                where[image_id] = f"{path.name} {entry}"
            for j, cap in enumerate(caps):
                text = caption_text(cap, path, f"{entry}.caption[{j}]" if isinstance(item["caption"], list) else entry)
                k = counts.get(image_id, 0)
                counts[image_id] = k + 1
                caption_rows.append(
                    {"caption_id": f"{image_id}#{k}", "image_id": image_id, "text": text, "variant": "original",
                     "split": split}
                )
    if not caption_rows:
        raise DatasetFormatError(pairs[0][0], None, "no items")
    image_rows = list(images.values())
    if verify_images:
        verify_image_files(image_rows, image_root, name)
    return build_dataset(name, image_rows, caption_rows, Path(annotations), warnings=[])
