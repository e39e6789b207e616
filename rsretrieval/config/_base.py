"""Base pieces of every config model: strict models, path expansion, the default cache folder."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict


def default_cache_dir() -> Path:
    """``$RSR_CACHE_DIR`` or ``~/.cache/rsretrieval``: trained embedded models, synthetic data, embeddings."""
    return Path(os.environ.get("RSR_CACHE_DIR", Path.home() / ".cache" / "rsretrieval"))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


def _expand(p: Path | str | None) -> str | None:
    """``~`` and ``$VARS`` expanded; a str so that JSON-mode validation (actors) accepts it too."""
    return None if p is None else os.path.expandvars(os.path.expanduser(str(p)))
