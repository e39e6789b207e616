"""Errors raised by dataset readers: each names the file (and entry) and says what to do."""

from __future__ import annotations

from pathlib import Path


class DatasetError(Exception):
    """Base class of dataset errors."""


class DatasetNotFoundError(DatasetError):
    """A dataset file or folder is missing: the message says where it was expected and how to fix it."""

    def __init__(self, what: str, path: str | Path, hint: str = "") -> None:
        msg = f"{what} not found at {path}."
        if hint:
            msg += f" {hint}"
        super().__init__(msg)
        self.path = str(path)


class DatasetFormatError(DatasetError):
    """A dataset file is malformed: the message names the file and the entry (index/line/key)."""

    def __init__(self, path: str | Path, entry: str | int | None, problem: str) -> None:
        where = f"{path}" + (f", entry {entry}" if entry is not None else "")
        super().__init__(f"{where}: {problem}")
        self.path = str(path)
        self.entry = entry
        self.problem = problem


class ImageDecodeError(DatasetError, OSError):
    """An image file exists but cannot be decoded (truncated, corrupt, not an image)."""

    def __init__(self, uri: str, stage: str, cause: BaseException) -> None:
        super().__init__(
            f"image file {uri} cannot be decoded ({stage}): {type(cause).__name__}: {cause}. Replace the file, or set "
            "datasets[].verify_images: decode to quarantine undecodable images before any stage runs.")
        self.uri = uri
        self.stage = stage
