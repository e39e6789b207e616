"""Synthetic corpora at NWPU / RS5M scale (no pixels) and the scale benchmark of the two-stage path.

:func:`write_synthetic_corpus` writes three :class:`~rsretrieval.search.store.VectorStore` folders for
``n`` images, shard by shard (the writer holds one shard): ``global`` (one unit vector per image, in
topic clusters so neighbours are confusable), ``crops`` (5 vectors per image: the global vector plus
noise, like uniform-grid crops) and ``nodes`` (3-9 graph-node vectors per image). :func:`make_queries`
derives queries from random gold images: a caption vector (the gold image's global vector plus noise,
so V2V is imperfect), text scenes (noisy copies of some crops) and a query graph (noisy copies of some
nodes). Recall numbers on it are therefore about the *pipeline* (shortlist ceiling vs rerank), never
about real retrieval; :func:`measure` labels its output "synthetic".

:func:`measure` runs, for one corpus: the V2V shortlist (exact, blocked, bounded memory), then S2S
(Q-MAM), G2G-Hungarian and VG2VG-GMN (a seeded untrained GMN: timing only) reranks of it through
:class:`~rsretrieval.search.store.StorePairs`, with wall time, ms per query and recall per stage.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from rsretrieval.search.store import StoreWriter, VectorStore

CROPS = 5  # vectors per image in the crops store
NODES = (3, 9)  # graph nodes per image: uniform in [3, 9]


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _centres(seed: int, n: int, dim: int) -> np.ndarray:
    return _unit(np.random.default_rng([seed, 0]).normal(size=(n, dim)))


def write_synthetic_corpus(folder: Path, n: int, dim: int = 256, node_dim: int = 64, seed: int = 0,
                           shard_items: int = 100_000, topics: int = 1000) -> dict[str, VectorStore]:
    """Write ``global``, ``crops`` and ``nodes`` stores of ``n`` synthetic images under ``folder``."""
    folder = Path(folder)
    done = folder / "corpus.json"
    spec = {"n": n, "dim": dim, "node_dim": node_dim, "seed": seed, "shard_items": shard_items, "topics": topics,
            "parquet": 1}
    if done.exists() and json.loads(done.read_text()) == spec:
        return {k: VectorStore(folder / k) for k in ("global", "crops", "nodes")}
    centres, node_centres = _centres(seed, topics, dim), _centres(seed + 1, topics, node_dim)
    writers = {"global": StoreWriter(folder / "global", dim, "synthetic global"),
               "crops": StoreWriter(folder / "crops", dim, "synthetic crops"),
               "nodes": StoreWriter(folder / "nodes", node_dim, "synthetic graph nodes")}
    for s, a in enumerate(range(0, n, shard_items)):
        rng = np.random.default_rng([seed, 1, s])
        m = min(shard_items, n - a)
        ids = [f"syn:{i:08d}" for i in range(a, a + m)]
        topic = rng.integers(0, topics, m)
        g = _unit(centres[topic] + 0.6 * rng.normal(size=(m, dim)) / np.sqrt(dim))  # cos to its topic ~0.86
        writers["global"].add(ids, g, np.ones(m, np.int64))
        _write_stage_parquet(folder / "global-parquet" / f"part-{s:05d}.parquet", ids, g, rng)
        crops = _unit(np.repeat(g, CROPS, 0) + rng.normal(size=(m * CROPS, dim)).astype(np.float32) / np.sqrt(dim))
        writers["crops"].add(ids, crops, np.full(m, CROPS, np.int64))
        sizes = rng.integers(NODES[0], NODES[1] + 1, m)
        owner = np.repeat(np.arange(m), sizes)
        nodes = _unit(node_centres[(topic[owner] * 7 + rng.integers(0, 50, len(owner))) % topics]
                      + 1.0 * rng.normal(size=(len(owner), node_dim)) / np.sqrt(node_dim))
        writers["nodes"].add(ids, nodes, sizes)
    stores = {k: w.close() for k, w in writers.items()}
    done.write_text(json.dumps(spec))
    return stores


def _write_stage_parquet(path: Path, ids: list[str], vectors: np.ndarray, rng: np.random.Generator) -> None:
    """The global vectors again as the embedding stage writes them (owner_id, vector; rows in the
    writers' order, not the table's), the input of the ordered-store conversion."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    order = rng.permutation(len(ids))
    flat = pa.array(np.ascontiguousarray(vectors[order]).reshape(-1))
    pq.write_table(pa.table({"owner_id": pa.array([ids[i] for i in order], pa.string()),
                             "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])}), path,
                   row_group_size=16384)


def make_queries(stores: dict[str, VectorStore], n_queries: int, seed: int = 0, noise: float = 3.0) -> dict[str, Any]:
    """Queries derived from random gold images: caption vectors, text-scene sets and query graphs."""
    from rsretrieval.matching.late_interaction import PackedVectors

    rng = np.random.default_rng([seed, 2])
    gold = rng.choice(len(stores["global"]), n_queries, replace=False)
    g = stores["global"].sets(gold).vectors.numpy()
    caption = _unit(g + noise * rng.normal(size=g.shape) / np.sqrt(g.shape[1]))  # cos to its gold ~0.32
    crops, nodes = stores["crops"].sets(gold), stores["nodes"].sets(gold)
    scenes, graphs = [], []
    for i in range(n_queries):
        c = crops.item(i).numpy()[rng.permutation(CROPS)[: rng.integers(2, CROPS + 1)]]
        scenes.append(_unit(c + 0.5 * rng.normal(size=c.shape) / np.sqrt(c.shape[1])))
        v = nodes.item(i).numpy()
        v = v[rng.permutation(len(v))[: max(2, len(v) - 2)]]
        graphs.append(_unit(v + 0.5 * rng.normal(size=v.shape) / np.sqrt(v.shape[1])))
    return {"gold": gold, "caption": caption, "scenes": PackedVectors.from_lists(scenes),
            "graphs": PackedVectors.from_lists(graphs)}


class MemoryWatch:
    """Peak anonymous RSS of this process (heap; memory-mapped store pages are file cache), sampled."""

    def __init__(self, every_s: float = 0.02) -> None:
        self.peak_kb, self._stop, self.every = 0, threading.Event(), every_s
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss_anon_kb() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, self.rss_anon_kb())
            time.sleep(self.every)

    def __enter__(self) -> "MemoryWatch":
        self.peak_kb = self.rss_anon_kb()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, self.rss_anon_kb())


def measure(folder: Path, n_queries: int = 1000, k: int = 100, seed: int = 0, hungarian_workers: int = 0,
            full_matrix: bool = False) -> list[dict[str, Any]]:
    """One row per stage (shortlist, each rerank): seconds, ms/query, R@1/5/10, peak anonymous MB."""
    import torch

    from rsretrieval.config import GMNConfig, HungarianConfig
    from rsretrieval.evaluation.metrics import recall_at_k
    from rsretrieval.matching.gmn import GraphMatchingNetwork
    from rsretrieval.matching.hungarian import HungarianScorer
    from rsretrieval.search.rerank import CosinePairs, GMNPairs, HungarianPairs, LateInteractionPairs, rerank
    from rsretrieval.search.store import StorePairs
    from rsretrieval.search.topk import exact_topk, shortlist_recall

    stores = {name: VectorStore(Path(folder) / name) for name in ("global", "crops", "nodes")}
    n = len(stores["global"])
    qs = make_queries(stores, n_queries, seed)
    rows: list[dict[str, Any]] = []

    def record(stage: str, seconds: float, watch: MemoryWatch, ranks: np.ndarray | None, **extra: Any) -> None:
        r = recall_at_k(ranks, [1, 5, 10]) if ranks is not None else {}
        rows.append({"images": n, "queries": n_queries, "k": k, "stage": stage, "seconds": seconds,
                     "ms_per_query": 1000 * seconds / n_queries, **{f"R@{kk}": v for kk, v in r.items()},
                     "peak_anon_mb": watch.peak_kb / 1024, "data": "synthetic", **extra})

    with MemoryWatch() as w:
        t0 = time.perf_counter()
        short = exact_topk(qs["caption"], stores["global"].shard_blocks(), k, query_block=1024, doc_block=65536)
        sec = time.perf_counter() - t0
    in_list = short.indices == qs["gold"][:, None]
    v2v_ranks = np.where(in_list.any(1), in_list.argmax(1) + 1, k + 1)
    record("v2v shortlist (exact, blocked)", sec, w, v2v_ranks, shortlist_recall=shortlist_recall(short, qs["gold"]))
    if full_matrix:  # CLIP_benchmark style: the whole (Q, N) matrix, then a full sort per query
        with MemoryWatch() as w:
            t0 = time.perf_counter()
            g = np.concatenate([v for _, v in stores["global"].shard_blocks()])
            scores = torch.as_tensor(qs["caption"]) @ torch.as_tensor(g).T
            order = torch.argsort(scores, dim=1, descending=True)
            full_ranks = (order == torch.as_tensor(qs["gold"])[:, None]).int().argmax(1).numpy() + 1
            sec = time.perf_counter() - t0
        record("v2v full matrix + sort (CLIP_benchmark style)", sec, w, full_ranks)
        del g, scores, order
    _streamed_stages(Path(folder), n, qs, short, k, record)
    cos = StorePairs(stores["global"], lambda sub, _: CosinePairs(qs["caption"], sub.vectors.numpy()))
    gmn = GraphMatchingNetwork(GMNConfig(use_global=True), seed=seed).eval()
    hung = HungarianScorer(HungarianConfig(workers=hungarian_workers))
    rerankers = {
        "s2s rerank (Q-MAM)": StorePairs(stores["crops"], lambda sub, _: LateInteractionPairs(qs["scenes"], sub)),
        "g2g rerank (Hungarian)": StorePairs(stores["nodes"], lambda sub, _: HungarianPairs(hung, qs["graphs"], sub)),
        # VG2VG's global cosine needs the store items of the batch's documents
        "vg2vg rerank (GMN, untrained: timing only)": StorePairs(stores["nodes"], lambda sub, items: GMNPairs(
            gmn, qs["graphs"], sub, cosine=lambda a, b: cos(a, items[b])), batch=4096),
    }
    for stage, scorer in rerankers.items():
        # twice: first with the page cache as found (a cold corpus reads the candidates from disk), then warm
        for label in ("", " [warm]"):
            with MemoryWatch() as w:
                t0 = time.perf_counter()
                res = rerank(short, scorer, qs["gold"], 10, query_block=256)
                sec = time.perf_counter() - t0
            record(stage + label, sec, w, res.ranks)
    return rows



def _streamed_stages(folder: Path, n: int, qs: dict[str, Any], short: Any, k: int, record: Any) -> None:
    """The benchmark's two-stage inputs at this size: the embedding-stage Parquet converted to a store in
    table order (:func:`ordered_store_from_embeddings`), then the V2V shortlist with queries read from a
    store block by block and the (Q, k) result memory-mapped (:func:`store_topk`); checked equal to the
    in-memory shortlist. Its rows go through ``record``."""
    import shutil
    import tempfile

    import pyarrow as pa

    from rsretrieval.search.store import ordered_store_from_embeddings
    from rsretrieval.search.topk import store_topk

    if not (folder / "global-parquet").exists():
        return
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        owners = pa.array([f"syn:{i:08d}" for i in range(n)], pa.string())
        with MemoryWatch() as w:
            t0 = time.perf_counter()
            ordered = ordered_store_from_embeddings(folder / "global-parquet", Path(tmp) / "ordered", owners)
            sec = time.perf_counter() - t0
        record("ordered store from embedding Parquet (2 passes)", sec, w, None)
        qw = StoreWriter(Path(tmp) / "queries", qs["caption"].shape[1])
        qw.add([f"q{i}" for i in range(len(qs["caption"]))], qs["caption"], np.ones(len(qs["caption"]), np.int64))
        queries = qw.close()
        with MemoryWatch() as w:
            t0 = time.perf_counter()
            top = store_topk(queries, np.arange(len(queries)), ordered, k, Path(tmp) / "shortlist", query_block=1024)
            sec = time.perf_counter() - t0
        got = np.asarray(top.indices)
        # the store path re-normalises unit vectors: scores may differ by an ulp and swap near-ties
        same_sets = bool((np.sort(got, 1) == np.sort(short.indices, 1)).all())
        in_list = got == qs["gold"][:, None]
        record("v2v shortlist (queries and images from stores, result memory-mapped)", sec, w,
               np.where(in_list.any(1), in_list.argmax(1) + 1, k + 1), same_candidate_sets=same_sets,
               positions_reordered=int((got != short.indices).sum()),
               max_score_diff=float(np.abs(np.asarray(top.scores) - short.scores).max()))
        del top, ordered
        shutil.rmtree(Path(tmp), ignore_errors=True)
