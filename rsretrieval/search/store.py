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
from pathlib import Path

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


def store_from_embeddings(parquet_dir: Path, folder: Path, kind: str = "embeddings") -> VectorStore:
    """A one-vector-per-item store from an embeddings folder (``owner_id``, ``vector`` Parquet, as the
    embedding stage writes it), converted one row group at a time: the folder is never read whole."""
    import pyarrow.parquet as pq

    files = sorted(Path(parquet_dir).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"{parquet_dir}: no Parquet files (an embeddings folder of the embedding stage?)")
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
