"""Helpers shared by the dataset readers (karpathy, nwpu, precomp, custom, harma).

Every reader: checks its files exist (``require_file`` / ``require_dir``), decodes text with
line-precise errors (``read_text``), builds the tables (``build_dataset``) and, unless told
otherwise, checks that every referenced image file exists (``verify_image_files``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from rsretrieval.data.errors import DatasetFormatError, DatasetNotFoundError
from rsretrieval.data.schema import (
    SPLITS,
    ReadReport,
    RSDataset,
    captions_table,
    find_duplicate_captions,
    images_table,
)

# RSICD / RSITMD / NWPU-RESISC45 style names: "<class>_<number>.<ext>" (e.g. "airport_348.jpg").
_CLASS_PREFIX = re.compile(r"^([A-Za-z]+)_\d+\.[A-Za-z0-9]+$")
MAX_LISTED_MISSING = 5


def require_file(path: Path, what: str, hint: str) -> Path:
    """The path if it is an existing file, else DatasetNotFoundError saying what to put there."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetNotFoundError(what, path, hint)
    return path


def require_dir(path: Path, what: str, hint: str) -> Path:
    """The path if it is an existing folder, else DatasetNotFoundError saying what to put there."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise DatasetNotFoundError(what, path, hint)
    return path


def abs_uri(image_root: Path, relative: str) -> str:
    """Absolute, normalised path of ``image_root/relative`` (symlinks are not resolved)."""
    return os.path.abspath(os.path.join(os.fspath(Path(image_root).expanduser()), relative))


def read_text(path: Path) -> str:
    """UTF-8 text of a file (a leading BOM is dropped); bad bytes raise naming line and byte offset."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DatasetFormatError(
            path, f"line {line}", f"not valid UTF-8 at byte offset {e.start} ({e.reason}); re-save the file as UTF-8"
        ) from None


def read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 text file without line endings (LF or CRLF); one final empty line is dropped."""
    lines = read_text(path).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def read_json(path: Path) -> Any:
    """Parsed JSON of a file; syntax errors name the line and column."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DatasetFormatError(path, f"line {e.lineno} column {e.colno}", f"invalid JSON: {e.msg}") from None


def caption_text(value: Any, path: Path, entry: str) -> str:
    """A caption stripped of surrounding whitespace; non-strings and empty captions are format errors."""
    if not isinstance(value, str):
        raise DatasetFormatError(path, entry, f"caption must be a string, got {type(value).__name__}: {value!r}")
    text = value.strip()
    if not text:
        raise DatasetFormatError(path, entry, "empty caption")
    return text


def add_caption(caption_rows: list[dict[str, Any]], seen: dict[str, str], caption_id: str, image_id: str,
                text: str, split: str, path: Path, entry: str) -> None:
    """Append one original caption row; a caption id used twice is an error naming both entries."""
    if caption_id in seen:
        raise DatasetFormatError(path, entry, f"caption id {caption_id!r} (sentid) already used by {seen[caption_id]}")
    seen[caption_id] = entry
    caption_rows.append({"caption_id": caption_id, "image_id": image_id, "text": text, "variant": "original", "split": split})


def check_split(value: Any, path: Path, entry: str, aliases: dict[str, str] | None = None) -> str:
    """A split name in SPLITS (after ``aliases``), else a format error."""
    if isinstance(value, str) and aliases and value in aliases:
        value = aliases[value]
    if value not in SPLITS:
        allowed = list(SPLITS) + sorted(aliases or {})
        raise DatasetFormatError(path, entry, f"unknown split {value!r} (expected one of {allowed})")
    return value


def class_from_filename(filename: str) -> str | None:
    """The class of a ``<class>_<N>.<ext>`` file name (RSICD/RSITMD/NWPU style), else None."""
    m = _CLASS_PREFIX.match(Path(filename).name)
    return m.group(1) if m else None


def verify_image_files(image_rows: list[dict[str, Any]], image_root: Path, dataset: str) -> None:
    """Raise DatasetNotFoundError if any referenced image file is missing (count + first few paths)."""
    missing = [r["uri"] for r in image_rows if not os.path.isfile(r["uri"])]
    if missing:
        shown = ", ".join(missing[:MAX_LISTED_MISSING]) + (", ..." if len(missing) > MAX_LISTED_MISSING else "")
        raise DatasetNotFoundError(
            f"{len(missing)} of {len(image_rows)} image files referenced by dataset '{dataset}'",
            Path(image_root).expanduser(),
            f"Missing: {shown}. Put the dataset's images in that folder (file names as in the annotations), "
            "or pass verify_images=False to read the annotations only.",
        )


def build_dataset(
    name: str,
    image_rows: list[dict[str, Any]],
    caption_rows: list[dict[str, Any]],
    source: Path,
    warnings: list[str] | None = None,
) -> RSDataset:
    """The RSDataset of the rows, with a ReadReport listing duplicate caption texts (rows are all kept)."""
    captions = captions_table(caption_rows)
    report = ReadReport(
        source=str(source), duplicate_captions=find_duplicate_captions(captions), warnings=list(warnings or [])
    )
    return RSDataset(name=name, images=images_table(image_rows), captions=captions, report=report)
