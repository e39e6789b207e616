"""Embeddings folders of the Ray stages as ordered, memory-mapped vector stores (built once, cached).

The embedding stages write Parquet shards in whatever order Ray's writers finish. The two-stage path
reads vectors through a :class:`~rsretrieval.search.store.VectorStore` whose item ``i`` is row ``i`` of
the dataset table (images, captions; scenes grouped per owner), so a store item number *is* a gallery
or query index and nothing maps ids to rows in a Python dict. The store lives inside the embeddings
folder (``_store-<order key>/``: a leading underscore, so Parquet readers skip it) and is keyed by the
owners' order, so a rerun opens it instead of converting again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from rsretrieval.search.store import VectorStore, slice_ids, ordered_store_from_embeddings

_CHUNK = 65536


def order_key(owners: Any, scenes: Any = None, owner_column: str = "image_id") -> str:
    """sha256 of the owners' order (and of the scene rows when given), read in chunks."""
    h = hashlib.sha256()
    columns = [owners] + ([scenes[owner_column], scenes["scene_idx"]] if scenes is not None else [])
    for col in columns:
        n = len(col)
        h.update(f"|{n}|".encode())
        for a in range(0, n, _CHUNK):
            part = slice_ids(col, a, min(n, a + _CHUNK))
            h.update("\n".join(map(str, part)).encode())
            h.update(b"\n")
    return h.hexdigest()[:16]


def embedding_store(emb_dir: Path, owners: Any, scenes: Any = None, owner_column: str = "image_id") -> VectorStore:
    """The vectors of an embeddings folder as a store ordered like ``owners`` (an Arrow array or list of
    ids); ``scenes``: the image or text scenes table, one item per owner with its scene vectors."""
    folder = Path(emb_dir) / f"_store-{order_key(owners, scenes, owner_column)}"
    if (folder / "meta.json").exists():
        return VectorStore(folder)
    return ordered_store_from_embeddings(emb_dir, folder, owners, scenes, owner_column, kind=Path(emb_dir).name)
