"""A corpus-scale vector store: packed vector sets in shards on disk, looked up by id without loading them.

Layout of a store folder (written by :class:`StoreWriter`, one shard at a time, so the writer never
holds the corpus either)::

    meta.json                      dim, items, shards, what the vectors are
    shard-00000.vectors.npy        (rows, dim) float32 - every vector of the shard's items, item by item
    shard-00000.offsets.npy        (items + 1,) int64 - item i's vectors are rows offsets[i]:offsets[i+1]
    ids.npy                        (items,) uint64 hash of each item id, in item order
    ids-sorted.npy                 (items, 2) int64: hashes sorted, with the item number (for lookup)

Shards are opened memory-mapped: reading the vectors of k candidates touches only their pages, so a
rerank's memory does not grow with the corpus. Item ids are looked up through their 64-bit hashes
(8 bytes per item instead of a Python dict of strings).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rsretrieval.matching.late_interaction import PackedVectors


def id_hash(ids: list[str]) -> np.ndarray:
    """64-bit hashes of item ids (blake2b; collisions are checked when the store is closed)."""
    return np.array([int.from_bytes(hashlib.blake2b(i.encode(), digest_size=8).digest(), "little") for i in ids],
                    dtype=np.uint64)


class StoreWriter:
    """Append items shard by shard: ``add(ids, sets)``, then ``close()``."""

    def __init__(self, folder: Path, dim: int, kind: str = "") -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.dim, self.kind, self.shards, self.items = dim, kind, 0, 0
        self._hashes: list[np.ndarray] = []

    def add(self, ids: list[str], vectors: np.ndarray, sizes: np.ndarray) -> None:
        """One shard: ``vectors`` (sum(sizes), dim) of ``len(ids)`` items with ``sizes`` vectors each."""
        sizes = np.asarray(sizes, np.int64)
        if len(ids) != len(sizes) or int(sizes.sum()) != len(vectors) or (sizes < 1).any():
            raise ValueError(f"shard {self.shards}: {len(ids)} ids, {len(sizes)} sizes, {len(vectors)} vectors "
                             "(every item needs >= 1 vector and sizes must sum to the vector count)")
        if vectors.shape[1] != self.dim:
            raise ValueError(f"shard {self.shards}: vectors of dim {vectors.shape[1]}, store dim {self.dim}")
        stem = self.folder / f"shard-{self.shards:05d}"
        np.save(f"{stem}.vectors.npy", np.ascontiguousarray(vectors, dtype=np.float32))
        np.save(f"{stem}.offsets.npy", np.concatenate([[0], np.cumsum(sizes)]))
        self._hashes.append(id_hash(ids))
        self.shards += 1
        self.items += len(ids)

    def close(self) -> "VectorStore":
        hashes = np.concatenate(self._hashes) if self._hashes else np.zeros(0, np.uint64)
        keys = hashes.view(np.int64)  # sorted as signed: the order lookup's searchsorted uses
        order = np.argsort(keys, kind="stable")
        if len(keys) and (np.diff(keys[order]) == 0).any():
            raise ValueError(f"{self.folder}: duplicate item ids (or a 64-bit hash collision)")
        np.save(self.folder / "ids.npy", hashes)
        np.save(self.folder / "ids-sorted.npy", np.stack([keys[order], order.astype(np.int64)], 1))
        (self.folder / "meta.json").write_text(json.dumps({"dim": self.dim, "items": self.items, "shards": self.shards,
                                                           "kind": self.kind}))
        return VectorStore(self.folder)


class VectorStore:
    """Read side: memory-mapped shards; ``sets(items)`` gathers item numbers into a PackedVectors."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        meta_path = self.folder / "meta.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"{meta_path} not found: not a vector store (write one with StoreWriter)")
        meta = json.loads(meta_path.read_text())
        self.dim, self.items = meta["dim"], meta["items"]
        self.vectors = [np.load(self.folder / f"shard-{s:05d}.vectors.npy", mmap_mode="r") for s in range(meta["shards"])]
        self.offsets = [np.load(self.folder / f"shard-{s:05d}.offsets.npy") for s in range(meta["shards"])]
        self.first = np.concatenate([[0], np.cumsum([len(o) - 1 for o in self.offsets])])  # first item of each shard
        self._sorted = np.load(self.folder / "ids-sorted.npy", mmap_mode="r")

    def __len__(self) -> int:
        return self.items

    def lookup(self, ids: list[str]) -> np.ndarray:
        """Item numbers of ``ids``; KeyError naming the first unknown id."""
        h = id_hash(ids).view(np.int64)
        keys = np.asarray(self._sorted[:, 0])
        pos = np.searchsorted(keys, h)
        ok = (pos < len(keys)) & (keys[np.minimum(pos, len(keys) - 1)] == h)
        if not ok.all():
            raise KeyError(f"{self.folder}: id {ids[int(np.flatnonzero(~ok)[0])]!r} is not in the store")
        return np.asarray(self._sorted[pos, 1])

    def sets(self, items: np.ndarray) -> PackedVectors:
        """The vector sets of ``items`` (item numbers), in that order (one fancy-index read per shard)."""
        items = np.asarray(items, np.int64)
        shard = np.searchsorted(self.first, items, side="right") - 1
        starts, sizes = np.empty(len(items), np.int64), np.empty(len(items), np.int64)
        for s in np.unique(shard):
            m = shard == s
            local = items[m] - self.first[s]
            starts[m], sizes[m] = self.offsets[s][local], self.offsets[s][local + 1] - self.offsets[s][local]
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        # row of every output vector inside its shard: start of its item + position within the item
        rows = np.repeat(starts - offsets[:-1], sizes) + np.arange(offsets[-1])
        row_shard = np.repeat(shard, sizes)
        out = np.empty((int(offsets[-1]), self.dim), np.float32)
        for s in np.unique(shard):
            m = row_shard == s
            out[m] = self.vectors[s][rows[m]]
        return PackedVectors(out, offsets)

    def shard_blocks(self) -> list[tuple[int, np.ndarray]]:
        """(first item, vectors) per shard for stores of one vector per item: the input of exact_topk."""
        return [(int(f), v) for f, v in zip(self.first[:-1], self.vectors)]


class StorePairs:
    """A pair scorer whose documents live in a :class:`VectorStore`: per batch of pairs, only the candidate
    documents are read (memory-mapped) and scored by ``make(doc_sets, doc_items) -> pair scorer`` (the
    scorer sees batch-local document indices; ``doc_items`` maps them back to store items)."""

    def __init__(self, store: VectorStore, make, batch: int = 8192) -> None:  # noqa: ANN001 - any pair-scorer factory
        self.store, self.make, self.batch = store, make, batch

    def __call__(self, qi: np.ndarray, di: np.ndarray) -> np.ndarray:
        out = np.empty(len(qi), np.float32)
        for s in range(0, len(qi), self.batch):
            docs, local = np.unique(di[s : s + self.batch], return_inverse=True)
            out[s : s + len(local)] = self.make(self.store.sets(docs), docs)(qi[s : s + self.batch], local)
        return out


class StoreSetPairs:
    """A pair scorer whose queries *and* documents live in stores: per batch of pairs, only the batch's
    distinct queries (``q_items[qi]``) and documents (store items ``di``) are read, and scored by
    ``make(query_sets, doc_sets, queries, docs) -> pair scorer`` on batch-local indices (``queries`` /
    ``docs``: the batch's global query and document indices, for a term that needs them, e.g. VG2VG's
    global cosine). Memory: one batch of sets."""

    def __init__(self, q_store: VectorStore, q_items: np.ndarray, d_store: VectorStore,
                 make: Callable[..., Callable[[np.ndarray, np.ndarray], np.ndarray]], batch: int = 8192) -> None:
        self.q_store, self.q_items, self.d_store, self.make, self.batch = q_store, np.asarray(q_items), d_store, make, batch

    def __call__(self, qi: np.ndarray, di: np.ndarray) -> np.ndarray:
        qi, di = np.asarray(qi), np.asarray(di)
        out = np.empty(len(qi), np.float32)
        # batches end where a query's run of pairs ends (when one fits): a query's candidates are then
        # scored in one call, in the same groups as the in-memory scorer (same arithmetic, same ties)
        ends = np.flatnonzero(np.diff(qi)) + 1
        s = 0
        while s < len(qi):
            e = min(len(qi), s + self.batch)
            if e < len(qi):
                cut = ends[np.searchsorted(ends, e, side="right") - 1] if len(ends) else 0
                e = cut if cut > s else e
            queries, lq = np.unique(qi[s:e], return_inverse=True)
            docs, ld = np.unique(di[s:e], return_inverse=True)
            scorer = self.make(self.q_store.sets(self.q_items[queries]), self.d_store.sets(docs), queries, docs)
            out[s:e] = scorer(lq, ld)
            s = e
        return out


def _parquet_files(parquet_dir: Path) -> list[Path]:
    files = sorted(Path(parquet_dir).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"{parquet_dir}: no Parquet files (an embeddings folder of the embedding stage?)")
    return files


def slice_ids(ids: Sequence[str] | Any, a: int, b: int) -> list[str]:
    return ids.slice(a, b - a).to_pylist() if hasattr(ids, "slice") and hasattr(ids, "to_pylist") else list(ids[a:b])


def ordered_store_from_embeddings(parquet_dir: Path, folder: Path, owners: Sequence[str] | Any,
                                  scenes: Any = None, owner_column: str = "image_id", kind: str = "embeddings",
                                  block: int = 65536) -> VectorStore:
    """A store whose item ``i`` is ``owners[i]`` (the order of the dataset table, so a store item number is
    a gallery / query index), from an embeddings folder written in any order by the Ray stage.

    ``scenes`` None: one vector per owner, id = the owner id. ``scenes`` (an Arrow table with
    ``owner_column`` and ``scene_idx``): the owner's vectors are those of ``<owner>#<scene_idx>``, by
    scene index. Two streaming passes with bounded memory: every vector into one memory-mapped file
    (with a 64-bit hash of its id: 16 bytes per vector stay in memory, not the vectors), then the
    owners in order, ``block`` at a time, gathered from it into the store's shards. An owner without
    vectors is a KeyError naming it; nothing is left half-written (built in a temporary folder, renamed).
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    files, folder = _parquet_files(parquet_dir), Path(folder)
    total = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    dim = pq.ParquetFile(files[0]).schema_arrow.field("vector").type.list_size
    tmp = folder.with_name(f"{folder.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        raw = np.lib.format.open_memmap(tmp / "unordered.npy", "w+", np.float32, (max(total, 1), dim))
        hashes, at = np.empty(total, np.uint64), 0
        for path in files:  # pass 1: row groups in the order the stage wrote them
            pf = pq.ParquetFile(path)
            for g in range(pf.num_row_groups):
                t = pf.read_row_group(g, columns=["owner_id", "vector"])
                col = t["vector"].combine_chunks()
                raw[at : at + len(t)] = col.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
                hashes[at : at + len(t)] = id_hash(t["owner_id"].to_pylist())
                at += len(t)
        keys = hashes.view(np.int64)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        del hashes, keys
        n = len(owners)
        if scenes is not None:  # sort the scene rows by (owner position, scene index)
            owner_arr = owners if isinstance(owners, pa.Array | pa.ChunkedArray) else pa.array(list(owners), pa.string())
            pos = pc.index_in(scenes[owner_column], value_set=owner_arr).to_numpy(zero_copy_only=False)
            keep = ~np.isnan(pos.astype(np.float64))
            pos = pos[keep].astype(np.int64)
            idx = scenes["scene_idx"].to_numpy()[keep].astype(np.int64)
            srt = np.lexsort((idx, pos))
            scene_owner, scene_idx = pos[srt], idx[srt]
            counts = np.bincount(scene_owner, minlength=n)
            if n and (counts == 0).any():
                i = int(np.argmin(counts))
                raise KeyError(f"{slice_ids(owners, i, i + 1)[0]!r} has no scenes in the scenes table")
            first = np.concatenate([[0], np.cumsum(counts)])
        writer = StoreWriter(tmp, dim, kind)
        for a in range(0, n, block):  # pass 2: owners in the given order
            b = min(n, a + block)
            ids = slice_ids(owners, a, b)
            if scenes is None:
                row_ids, sizes = ids, np.ones(len(ids), np.int64)
            else:
                sizes = counts[a:b]
                row_ids = [f"{o}#{s}" for o, s in zip(np.repeat(np.array(ids, dtype=object), sizes),
                                                       scene_idx[first[a] : first[b]].tolist())]
            h = id_hash(row_ids).view(np.int64)
            p = np.minimum(np.searchsorted(sorted_keys, h), len(sorted_keys) - 1)
            found = (sorted_keys[p] == h) if len(sorted_keys) else np.zeros(len(h), bool)
            if not found.all():
                raise KeyError(f"{parquet_dir}: no embedding for {row_ids[int(np.flatnonzero(~found)[0])]!r}")
            writer.add(ids, np.asarray(raw[order[p]]), sizes)
        del raw
        (tmp / "unordered.npy").unlink()
        writer.close()
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return VectorStore(folder)


def store_from_embeddings(parquet_dir: Path, folder: Path, kind: str = "embeddings") -> VectorStore:
    """A one-vector-per-item store from an embeddings folder (``owner_id``, ``vector`` Parquet, as the
    embedding stage writes it), converted one row group at a time: the folder is never read whole."""
    import pyarrow.parquet as pq

    files = _parquet_files(parquet_dir)
    writer: StoreWriter | None = None
    for path in files:
        pf = pq.ParquetFile(path)
        for g in range(pf.num_row_groups):
            t = pf.read_row_group(g, columns=["owner_id", "vector"])
            col = t["vector"].combine_chunks()
            vectors = col.flatten().to_numpy(zero_copy_only=False).reshape(-1, col.type.list_size)
            writer = writer or StoreWriter(folder, vectors.shape[1], kind)
            writer.add(t["owner_id"].to_pylist(), vectors, np.ones(len(vectors), np.int64))
    return writer.close()
