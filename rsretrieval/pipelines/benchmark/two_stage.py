"""The benchmark's two-stage path (``eval.shortlist_k``): vectors stay on disk, queries stream in blocks.

Every vector the V2V / V2S / S2V / S2S cells need is read through an ordered, memory-mapped
:class:`~rsretrieval.search.store.VectorStore` built from the embedding stage's Parquet shards
(:func:`rsretrieval.pipelines.stages.stores.embedding_store`): the V2V shortlist streams the caption vectors
``eval.chunk_size`` queries at a time against the image store's shards and writes its (Q, k) result
to memory-mapped files under ``<run>/shortlists/``; each rerank reads only a batch's distinct queries
and candidate images. V2V itself is ranked from the shortlist's scores (ranks beyond k are reported
as k + 1, like every reranked cell). So no cell holds a (Q, D), (N, D) or (Q, N) array in the driver;
what stays in memory is per query: the gold index, its rank and the saved top-k.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rsretrieval.search.store import StoreSetPairs, VectorStore
from rsretrieval.search.topk import TopK, unit_rows


@dataclass
class FullVectors:
    """One variant's L2-normalised caption and image vectors in memory (the full-matrix path)."""

    captions: np.ndarray
    images: np.ndarray

    def cosine_matrix(self) -> np.ndarray:
        return self.captions @ self.images.T

    def cosine_pairs(self) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        from rsretrieval.search.rerank import CosinePairs

        return CosinePairs(self.captions, self.images)


@dataclass
class StoredVectors:
    """One variant's global vectors in stores, its queries' store items and its V2V shortlist."""

    cap_store: VectorStore
    cap_items: np.ndarray
    img_store: VectorStore
    shortlist: TopK

    def cosine_pairs(self) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        from rsretrieval.search.rerank import CosinePairs

        return StoreSetPairs(self.cap_store, self.cap_items, self.img_store,
                             lambda q, d, *_: CosinePairs(unit_rows(q.vectors), unit_rows(d.vectors)))


@dataclass
class BackboneStores:
    """The stores of one dataset split x backbone."""

    images: VectorStore
    captions: VectorStore
    crops: dict[str, VectorStore]  # crop method -> image scene sets
    text_scenes: VectorStore | None


def open_stores(ds: Any, scenes: Any, img_dir: Path, cap_dir: Path, crop_dirs: dict[str, Path],
                txt_dir: Path | None) -> BackboneStores:
    """Ordered stores of a split's embeddings (converted once, then opened from the cache)."""
    from rsretrieval.pipelines.stages.stores import embedding_store

    image_ids, caption_ids = ds.images["image_id"], ds.captions["caption_id"]
    return BackboneStores(
        embedding_store(img_dir, image_ids), embedding_store(cap_dir, caption_ids),
        {m: embedding_store(p, image_ids, scenes.image[m], "image_id") for m, p in crop_dirs.items()},
        embedding_store(txt_dir, caption_ids, scenes.text, "caption_id") if txt_dir else None)


def mean_set_size(store: VectorStore, items: np.ndarray | None = None) -> float:
    """Mean vectors per item of a store (over ``items`` when given), from its offsets only."""
    sizes = np.concatenate([np.diff(o) for o in store.offsets]) if store.offsets else np.zeros(0)
    sizes = sizes if items is None else sizes[items]
    return float(sizes.mean()) if len(sizes) else float("nan")


def scratch_dir(run_dir: Path) -> Path:
    """Where a run keeps its memory-mapped scratch (shortlists, graph node stores)."""
    return Path(run_dir) / "scratch"


def drop_scratch(run_dir: Path) -> None:
    """The scratch is one run's (a shortlist is Q x k x 12 bytes): removed at its end."""
    shutil.rmtree(scratch_dir(run_dir), ignore_errors=True)


def node_blocks(node_counts: np.ndarray, block: int, max_nodes: int) -> list[tuple[int, int]]:
    """(start, end) of consecutive graph blocks of at most ``block`` graphs and about ``max_nodes`` nodes (a
    graph larger than that is a block of its own): the node encoder's memory follows nodes, not graphs, so
    a block of 4,096 image graphs (~100k nodes) would need ~4x the memory of 4,096 caption graphs."""
    cum = np.cumsum(np.maximum(np.asarray(node_counts, np.int64), 1))
    out, a = [], 0
    while a < len(cum):
        base = int(cum[a - 1]) if a else 0
        fit = int(np.searchsorted(cum, base + max_nodes, side="right"))
        b = min(len(cum), a + block, max(a + 1, fit))
        out.append((a, b))
        a = b
    return out


def node_counts(elements: Any) -> np.ndarray:
    """Nodes per graph of a GraphTable, a list of GraphElements or a list of node-vector arrays."""
    if hasattr(elements, "node_counts"):
        return elements.node_counts()
    return np.array([e.node_count if hasattr(e, "node_count") else len(e) for e in elements], np.int64)


def node_store(nodes_of: Callable[[list[Any]], Any], elements: Any, folder: Path, block: int = 4096,
               max_nodes: int = 32_768) -> VectorStore:
    """Graph node sets of ``elements`` (in gallery or query order) embedded by ``nodes_of`` (graphs ->
    PackedVectors) in blocks of at most ``block`` graphs and about ``max_nodes`` nodes (:func:`node_blocks`)
    into a store: item ``i`` = ``elements[i]``."""
    from rsretrieval.search.store import StoreWriter

    if folder.exists():  # a cut-off earlier attempt of this run
        shutil.rmtree(folder)
    writer = None
    for a, b in node_blocks(node_counts(elements), block, max_nodes):
        nodes = nodes_of(elements[a:b])
        vectors = nodes.vectors.detach().cpu().numpy()
        writer = writer or StoreWriter(folder, vectors.shape[1], "graph nodes")
        writer.add([str(i) for i in range(a, a + len(nodes))], vectors, nodes.sizes.numpy())
    if writer is None:
        raise ValueError(f"{folder}: no graphs to store")
    return writer.close()


def graph_pair_scorer(similarity: str, q_nodes: VectorStore, d_nodes: VectorStore, hungarian: Any, gmn: Any,
                      cosine: Callable[[np.ndarray, np.ndarray], np.ndarray] | None, w: float,
                      batch: int = 4096) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """G2G / VG2VG on stored node sets (query item = variant-local query index): Hungarian, mixed with
    ``cosine`` as ``(1 - w) cosine + w Hungarian`` for VG2VG, or the GMN reading ``cosine`` itself."""
    from rsretrieval.search.rerank import GMNPairs, HungarianPairs, MixedPairs

    items = np.arange(len(q_nodes))
    if similarity == "hungarian":
        scorer: Any = StoreSetPairs(q_nodes, items, d_nodes, lambda q, d, *_: HungarianPairs(hungarian, q, d), batch)
        return MixedPairs(cosine, scorer, w) if cosine is not None else scorer

    def make(q: Any, d: Any, queries: np.ndarray, docs: np.ndarray) -> Any:
        return GMNPairs(gmn, q, d, None if cosine is None else (lambda a, b: cosine(queries[a], docs[b])))

    return StoreSetPairs(q_nodes, items, d_nodes, make, batch)
