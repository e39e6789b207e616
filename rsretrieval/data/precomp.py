"""Reader of the AMFMN / GaLR "precomp" retrieval format: ``{split}_caps.txt`` + ``{split}_filename.txt``.

``{split}_caps.txt`` holds one caption per line. ``{split}_filename.txt`` is either

* line-aligned with it (same line count, each image name repeated once per caption: the AMFMN
  ``test_*`` files), or
* one name per image, with k captions per image in consecutive blocks of the caps file
  (``len(caps) == k * len(filenames)``: the real RSITMD ``train_*`` files look like that).

Any other ratio is a format error. There are no sentence ids: ``caption_id`` is ``<image_id>#<k>``.

Caution: AMFMN's ``ucm_precomp`` and ``sydney_precomp`` ``test_*`` files hold the images that the
UCM / Sydney ``dataset.json`` marks ``"val"`` (not ``"test"``); the split here is the file's split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from rsretrieval.data._common import (
    abs_uri,
    build_dataset,
    caption_text,
    check_split,
    class_from_filename,
    read_lines,
    require_dir,
    verify_image_files,
)
from rsretrieval.data.errors import DatasetFormatError, DatasetNotFoundError
from rsretrieval.data.schema import RSDataset


def _verify(root: Path, image_root: Path) -> tuple[Path, Path]:
    """Check the precomp folder and the image folder exist, saying what goes where."""
    root = require_dir(
        root, "precomp annotation folder",
        "Put the {split}_caps.txt and {split}_filename.txt files (e.g. AMFMN data/rsitmd_precomp/) "
        "there, or point `annotations` to that folder.",
    )
    image_root = require_dir(
        image_root, "Image folder",
        "Put the dataset's image files there (names as in {split}_filename.txt), or point `image_root` to it.",
    )
    return root, image_root


def _pairs(caps_path: Path, names_path: Path, warnings: list[str]) -> list[tuple[str, list[tuple[int, str]]]]:
    """(file name, [(caps line number, caption)]) per image, in first-seen order."""
    caps = read_lines(caps_path)
    names = read_lines(names_path)
    for n, name in enumerate(names, 1):
        if not name.strip():
            raise DatasetFormatError(names_path, f"line {n}", "empty file name")
    names = [n.strip() for n in names]
    texts = [(n, caption_text(c, caps_path, f"line {n}")) for n, c in enumerate(caps, 1)]
    if not names:
        raise DatasetFormatError(names_path, None, "no file names")
    groups: dict[str, list[tuple[int, str]]] = {}
    if len(caps) == len(names):
        for name, cap in zip(names, texts):
            groups.setdefault(name, []).append(cap)
        if len(groups) == len(names) and len(names) > 1:
            warnings.append(
                f"{names_path.name}: every image has exactly one caption; if this file lists one name per "
                f"image, {caps_path.name} is probably cut short"
            )
        return list(groups.items())
    if len(caps) % len(names) != 0:
        raise DatasetFormatError(
            caps_path, None,
            f"{len(caps)} caption lines do not match {len(names)} file names in {names_path} "
            "(expected equal counts, or k captions per file name)",
        )
    k = len(caps) // len(names)
    first_line: dict[str, int] = {}
    for n, name in enumerate(names, 1):
        if name in first_line:
            raise DatasetFormatError(
                names_path, f"line {n}",
                f"{name!r} repeats line {first_line[name]}, but with {k} captions per name "
                f"({len(caps)} captions / {len(names)} names) each name must appear once",
            )
        first_line[name] = n
        groups[name] = texts[(n - 1) * k : n * k]
    return list(groups.items())


def read_precomp(
    root: Path,
    image_root: Path,
    dataset: str,
    splits: Sequence[str] = ("train", "val", "test"),
    verify_images: bool = True,
) -> RSDataset:
    """Read the ``{split}_caps.txt`` / ``{split}_filename.txt`` pairs of ``root`` (missing splits are skipped)."""
    root, image_root = _verify(root, image_root)
    image_rows: list[dict[str, Any]] = []
    caption_rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    seen: dict[str, str] = {}
    for split in splits:
        check_split(split, root, "splits argument")
        caps_path, names_path = root / f"{split}_caps.txt", root / f"{split}_filename.txt"
        if not caps_path.is_file() and not names_path.is_file():
            warnings.append(f"split {split!r} skipped: no {caps_path.name} / {names_path.name} in {root}")
            continue
        for present, absent in ((caps_path, names_path), (names_path, caps_path)):
            if present.is_file() and not absent.is_file():
                raise DatasetNotFoundError(
                    f"{absent.name} (partner of {present.name})", absent,
                    "precomp splits need both {split}_caps.txt and {split}_filename.txt.",
                )
        for filename, caps in _pairs(caps_path, names_path, warnings):
            image_id = f"{dataset}:{filename}"
            where = f"{names_path.name}"
            if image_id in seen:
                raise DatasetFormatError(
                    names_path, f"{filename!r}", f"image already listed in {seen[image_id]} (an image has one split)"
                )
            seen[image_id] = where
            image_rows.append(
                {"image_id": image_id, "dataset": dataset, "split": split, "uri": abs_uri(image_root, filename),
                 "scene_label": class_from_filename(filename)}
            )
            caption_rows.extend(
                {"caption_id": f"{image_id}#{k}", "image_id": image_id, "text": text, "variant": "original",
                 "split": split}
                for k, (_, text) in enumerate(caps)
            )
    if not image_rows:
        raise DatasetNotFoundError(
            f"precomp files for splits {list(splits)}", root,
            "Expected {split}_caps.txt and {split}_filename.txt (e.g. test_caps.txt, test_filename.txt).",
        )
    if verify_images:
        verify_image_files(image_rows, image_root, dataset)
    return build_dataset(dataset, image_rows, caption_rows, root, warnings)
