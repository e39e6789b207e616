"""G2G graph similarity by optimal one-to-one node assignment (thesis sec. 5.3.2).

S = E_q E_d^T (cosines of L2-normalised node vectors); the Hungarian algorithm
(``scipy.optimize.linear_sum_assignment``, rectangular allowed) picks the n = min(|V_q|, |V_d|)
pairs of maximal total similarity. Score = that total / n ("matched", thesis) or / |V_q| ("query":
unmatched query nodes count 0). Edges are ignored, as in the thesis.

The assignment is the unavoidable per-pair part; everything else is batched:
- documents are sorted by size once, so each size group is a column range of one
  (D, sum N_d) matrix and a block of queries of equal size gives a 4-D *view*
  (queries, N_q, documents, N_d) of one GEMM, with no padding;
- exact shortcuts, vectorised per block: min(N_q, N_d) == 1 is a max; when every query node's
  best document node is distinct (or, for N_q > N_d, every document node's best query node),
  the sum of those maxima is an upper bound that is attained, so it is the optimum (checking costs
  a pass over S, so by default it is tried only where distinct argmaxes are not unlikely);
- a shortlist (k documents per query, the rerank path) is scored in batches of equal-size queries: one
  gather of the documents' node rows, one stacked GEMM, and the shortcuts as segment reductions over all
  pairs of the batch; only the remaining assignments are a loop over pairs;
- blocks run in a spawn-context process pool (numpy only in workers, no torch, no fork).
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import os
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.optimize import linear_sum_assignment

if TYPE_CHECKING:  # runtime imports stay numpy/scipy only: spawned workers start fast
    from rsretrieval.config import HungarianConfig
    from rsretrieval.matching.late_interaction import PackedVectors

STAT_KEYS = ("gemm_s", "shortcut_s", "assign_s", "pairs_min1", "pairs_greedy", "pairs_lsa")
Item = tuple[np.ndarray, int, "np.ndarray | None"]  # (query rows (n*N_q, D), N_q, sorted doc positions | None)


# pairs below which the process pool does not pay: ~2.7 us per pair in one process here (1,500 x 300
# pairs: 1.2 s serial, 6.6 s with 2 spawned workers started from a script that imports torch)
POOL_MIN_PAIRS = 2_000_000

def _numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def _unit(x: Any, dtype: type = np.float64) -> np.ndarray:
    """Rows of unit L2 norm (zero rows stay zero)."""
    x = _numpy(x).astype(dtype, copy=False)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def hungarian_pair(eq: Any, ed: Any, normalise: str = "matched") -> float:
    """Reference score of one (query graph, document graph) pair, in float64. Shapes: (N_q, D), (N_d, D)."""
    if normalise not in ("matched", "query"):
        raise ValueError(f"normalise must be 'matched' or 'query', got {normalise!r}")
    q, d = _unit(eq), _unit(ed)
    s = q @ d.T
    rows, cols = linear_sum_assignment(s, maximize=True)
    return float(s[rows, cols].sum() / (len(rows) if normalise == "matched" else len(q)))


@dataclass
class _Docs:
    """Document node vectors sorted by graph size: ``mat`` (sum N_d, D), row-major so a shortlist's documents
    are gathered as whole rows (a column gather of the transposed matrix cost more than the assignments);
    the GEMM reads it transposed without a copy. ``sizes`` ascending."""

    mat: np.ndarray
    sizes: np.ndarray
    starts: np.ndarray = field(init=False)  # first row of each document

    def __post_init__(self) -> None:
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)

    def groups(self) -> list[tuple[int, int, int, int, int]]:
        """(first doc, end doc, size, first column, end column) per run of equal size."""
        cuts = [0, *(np.flatnonzero(np.diff(self.sizes)) + 1).tolist(), len(self.sizes)]
        cols = np.concatenate([[0], np.cumsum(self.sizes)])
        return [(a, b, int(self.sizes[a]), int(cols[a]), int(cols[b])) for a, b in zip(cuts[:-1], cuts[1:])]



def _score_shortlists(items: list[Item], docs: _Docs, normalise: str, shortcuts: tuple[bool, bool | None],
                      stats: np.ndarray, max_rows: int = 2048) -> list[np.ndarray]:
    """Scores of many queries' shortlists (``items``: (query rows, N_q, sorted document positions)), in batches
    of queries of equal N_q whose shortlisted documents have at most ``max_rows`` node rows in all.

    Per query, per-document numpy calls cost more than the assignments at k = 10 (a shortlist of 10 small
    graphs is ~100 similarities per pair); so a batch is one gather and one batched GEMM, and the exact
    shortcuts are segment reductions over all its pairs at once: only the assignments stay per pair."""
    nqs = np.array([nq for _, nq, _ in items], np.int64)
    outs: list[np.ndarray] = [np.empty(0, np.float32)] * len(items)
    for nq in np.unique(nqs).tolist():
        batch: list[int] = []
        rows = 0
        for i in np.flatnonzero(nqs == nq).tolist():
            r = int(docs.sizes[items[i][2]].sum())
            if batch and rows + r > max_rows:
                _score_same_size(items, batch, nq, docs, normalise, shortcuts, stats, outs)
                batch, rows = [], 0
            batch.append(i)
            rows += r
        _score_same_size(items, batch, nq, docs, normalise, shortcuts, stats, outs)
    return outs


def _score_same_size(items: list[Item], batch: list[int], nq: int, docs: _Docs, normalise: str,
                     shortcuts: tuple[bool, bool | None], stats: np.ndarray, outs: list[np.ndarray]) -> None:
    """``items[batch]`` (all with ``nq`` nodes) into ``outs``. Layout: query g's documents side by side in row g
    of S (G, nq, L), padded to the longest row with -inf; pair p holds columns [start_p, start_p + size_p)."""
    t0 = time.perf_counter()
    sels = [items[i][2] for i in batch]
    ks = np.array([len(x) for x in sels], np.int64)
    sel = np.concatenate(sels)
    sizes = docs.sizes[sel].astype(np.int64)
    n_g, n_p = len(batch), len(sel)
    pair_query = np.repeat(np.arange(n_g), ks)
    first_pair = np.concatenate([[0], np.cumsum(ks)[:-1]])
    col_end = np.cumsum(sizes)
    query_base = (col_end - sizes)[first_pair]  # columns before each query's first document
    col0 = col_end - sizes - query_base[pair_query]  # first column of each pair inside its query's row
    width = int((col0 + sizes).max())
    total_cols = int(col_end[-1])
    within = np.arange(total_cols) - np.repeat(col_end - sizes, sizes)  # node index inside its document
    flat = np.repeat(pair_query * width + col0, sizes) + within  # position of each document row in the (G, L) grid
    gather = np.zeros(n_g * width, np.int64)  # padding gathers row 0, then becomes -inf
    gather[flat] = np.repeat(docs.starts[sel], sizes) + within
    qv = np.stack([items[i][0] for i in batch])  # (G, nq, D)
    s = np.matmul(qv, docs.mat[gather].reshape(n_g, width, -1).transpose(0, 2, 1))  # (G, nq, L)
    valid = np.zeros(n_g * width, bool)
    valid[flat] = True
    sf = np.ascontiguousarray(s.transpose(1, 0, 2)).reshape(nq, n_g * width)  # (nq, G * L): pairs are segments
    sf[:, ~valid] = -np.inf
    t1 = time.perf_counter()
    stats[0] += t1 - t0

    starts = pair_query * width + col0  # ascending; a query's last segment also spans its padding (-inf)
    n = np.minimum(nq, sizes)
    denom = (n if normalise == "matched" else np.full(n_p, nq)).astype(np.float64)
    wide = sizes >= nq
    # The sum of the smaller side's best similarities bounds the optimum; it is attained when the maxima of
    # different nodes never share a partner (every tied maximum counted), so any choice of them is one-to-one.
    # wide pairs (nq <= size): best document node per query node
    seg_max = np.maximum.reduceat(sf, starts, axis=1)  # (nq, P)
    hit = sf == np.repeat(seg_max, np.diff(np.append(starts, sf.shape[1])), axis=1)
    distinct_wide = np.maximum.reduceat(hit.sum(axis=0), starts) <= 1
    total_wide = seg_max.sum(axis=0, dtype=np.float64)
    # tall pairs: best query node per document node
    col_max = sf.max(axis=0)
    hit_t = (sf == col_max) & valid
    distinct_tall = (np.add.reduceat(hit_t, starts, axis=1) <= 1).all(axis=0)
    total_tall = np.add.reduceat(np.where(valid, col_max, 0.0), starts).astype(np.float64)
    out = np.where(wide, total_wide, total_tall) / denom
    one = (n == 1) & shortcuts[0]  # one pair to match: the max of S, ties or not
    if shortcuts[1] is None:
        uniq, inverse = np.unique(sizes, return_inverse=True)
        greedy = np.array([_greedy_pays(nq, int(z)) for z in uniq], bool)[inverse]
    else:
        greedy = np.full(n_p, bool(shortcuts[1]))
    shortcut = ~one & greedy & (n > 1) & np.where(wide, distinct_wide, distinct_tall)
    stats[3] += int(one.sum())
    stats[4] += int(shortcut.sum())
    t2 = time.perf_counter()
    stats[1] += t2 - t1

    for p in np.flatnonzero(~(one | shortcut)).tolist():
        c = int(col0[p])
        block = s[pair_query[p], :, c : c + sizes[p]]
        r, cols = linear_sum_assignment(block, maximize=True)
        out[p] = block[r, cols].sum(dtype=np.float64) / denom[p]
        stats[5] += 1
    stats[2] += time.perf_counter() - t2
    for i, part in zip(batch, np.split(out.astype(np.float32), np.cumsum(ks)[:-1])):
        outs[i] = part


@functools.lru_cache(maxsize=65536)
def _greedy_pays(nq: int, size: int) -> bool:
    """Try the distinct-argmax shortcut (auto mode) where uniform argmaxes of the smaller side would be
    distinct with probability >= 0.25; cached: the shortlist path asks per query."""
    return _p_distinct(min(nq, size), max(nq, size)) >= 0.25


def _p_distinct(n: int, m: int) -> float:
    """Probability that n uniform draws among m are all distinct (birthday problem)."""
    return float(np.prod(1.0 - np.arange(n) / m))


def _score_block(qv: np.ndarray, nq: int, docs: _Docs, groups: list, normalise: str,
                 shortcuts: tuple[bool, bool | None], stats: np.ndarray) -> np.ndarray:
    """Scores of a block of queries that all have ``nq`` nodes vs ``docs``: (len(qv) // nq, n_docs)."""
    t0 = time.perf_counter()
    s = qv @ docs.mat.T  # (n * nq, sum N_d): one GEMM for the whole block
    stats[0] += time.perf_counter() - t0
    nblk = len(qv) // nq
    out = np.empty((nblk, len(docs.sizes)), np.float32)
    for g0, g1, size, c0, c1 in groups:
        t1 = time.perf_counter()
        v = s[:, c0:c1].reshape(nblk, nq, g1 - g0, size)  # a view: no padding, no copy
        n = min(nq, size)
        denom = n if normalise == "matched" else nq
        if n == 1 and shortcuts[0]:  # one pair to match: the assignment is the max of S
            out[:, g0:g1] = v.max(axis=(1, 3)) / denom
            stats[3] += v.shape[0] * v.shape[2]
            stats[1] += time.perf_counter() - t1
            continue
        todo = np.ones((nblk, g1 - g0), bool)
        if n > 1 and (shortcuts[1] or (shortcuts[1] is None and _greedy_pays(nq, size))):
            # best partner per node of the smaller side; all distinct -> optimal
            axis = 3 if nq <= size else 1
            best = v.argmax(axis=axis)
            out[:, g0:g1] = np.take_along_axis(v, np.expand_dims(best, axis), axis).sum(axis=(1, 3)) / denom
            set_axis = 1 if axis == 3 else 2
            best.sort(axis=set_axis)
            todo = ~(np.diff(best, axis=set_axis) != 0).all(axis=set_axis)
            stats[4] += todo.size - int(todo.sum())
        t2 = time.perf_counter()
        stats[1] += t2 - t1
        qi, dj = np.nonzero(todo)
        if len(qi):
            blocks = v[qi, :, dj, :]  # (pairs, nq, size), contiguous: faster for scipy than a strided view
            rows, cols = np.empty((len(qi), n), np.intp), np.empty((len(qi), n), np.intp)
            for k in range(len(qi)):
                rows[k], cols[k] = linear_sum_assignment(blocks[k], maximize=True)
            total = blocks[np.arange(len(qi))[:, None], rows, cols].sum(axis=1, dtype=np.float64)
            out[qi, g0 + dj] = total / denom
            stats[5] += len(qi)
        stats[2] += time.perf_counter() - t2
    return out


_STATE: dict[str, Any] = {}


def _init_worker(mat: np.ndarray, sizes: np.ndarray, normalise: str, shortcuts: tuple[bool, bool | None],
                 blas_threads: int) -> None:
    """Pool initializer: receive the documents once per process; cap BLAS threads (no oversubscription)."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(blas_threads)
    except ImportError:  # optional: without it BLAS may oversubscribe, results are unchanged
        pass
    docs = _Docs(mat, sizes)
    _STATE.update(docs=docs, groups=docs.groups(), normalise=normalise, shortcuts=shortcuts)


def _run_task(items: list[Item], state: dict[str, Any] | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """Score a list of items; ``sel`` None = all documents (a block of queries), else a shortlist."""
    st = _STATE if state is None else state
    docs, stats = st["docs"], np.zeros(len(STAT_KEYS))
    outs: list[np.ndarray] = [np.empty(0, np.float32)] * len(items)
    short = []
    for i, (qv, nq, sel) in enumerate(items):
        if sel is None or 2 * len(sel) > len(docs.sizes):  # most documents: the shared matrix, no gather
            out = _score_block(qv, nq, docs, st["groups"], st["normalise"], st["shortcuts"], stats)
            outs[i] = out if sel is None else out[0, sel]
        else:
            short.append(i)
    if short:
        scored = _score_shortlists([items[i] for i in short], docs, st["normalise"], st["shortcuts"], stats)
        for i, out in zip(short, scored):
            outs[i] = out
    return outs, stats


def _cpu_count() -> int:
    """Cores this process may use (the affinity mask in containers), else os.cpu_count()."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _rows(mat: np.ndarray, offsets: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Packed rows of ``items`` (in that order), as one contiguous (sum sizes, D) array."""
    sizes = offsets[items + 1] - offsets[items]
    shift = np.repeat(offsets[items] - np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes)
    return mat[shift + np.arange(int(sizes.sum()))]


class HungarianScorer:
    """Hungarian graph similarity for all (query, document) pairs, or a shortlist of pairs.

    ``block_bytes`` bounds the similarity block of one task (queries x all document nodes, fp32).
    ``min1`` / ``greedy`` switch the exact shortcuts (min size 1 -> max; distinct argmaxes -> their sum)
    off, for measuring them; results are the same either way (up to fp32 rounding). ``greedy=None``
    (auto) tries the distinct-argmax check only where uniform argmaxes would be distinct with
    probability >= 0.25 (small graphs); True / False force it.
    ``last_stats`` holds the wall time and the CPU-seconds/pair counts of the latest ``score`` call.
    """

    def __init__(self, cfg: HungarianConfig | None = None, *, min1: bool = True, greedy: bool | None = None,
                 block_bytes: int = 64 << 20, pairs_per_task: int = 20_000,
                 pool_min_pairs: int = POOL_MIN_PAIRS) -> None:
        if cfg is None:
            from rsretrieval.config import HungarianConfig

            cfg = HungarianConfig()
        self.normalise, self.shortcuts = cfg.normalise, (min1, greedy)
        self.workers = cfg.workers or _cpu_count()
        self.block_bytes, self.pairs_per_task, self.pool_min_pairs = block_bytes, pairs_per_task, pool_min_pairs
        self.last_stats: dict[str, float] = {}

    def score(self, queries: PackedVectors, docs: PackedVectors, shortlist: Any = None) -> np.ndarray:
        """(Q, D) float32 scores; with ``shortlist`` ((P, 2) query/document indices) a (P,) array."""
        t0 = time.perf_counter()
        qmat, qoff = _unit(queries.vectors, np.float32), _numpy(queries.offsets).astype(np.int64)
        dmat, doff = _unit(docs.vectors, np.float32), _numpy(docs.offsets).astype(np.int64)
        if qmat.shape[1] != dmat.shape[1]:
            raise ValueError(f"query dim {qmat.shape[1]} != document dim {dmat.shape[1]}")
        n_q, n_d = len(qoff) - 1, len(doff) - 1
        if n_q == 0 or n_d == 0 or (shortlist is not None and len(np.asarray(shortlist)) == 0):
            self.last_stats = {}
            return np.zeros((n_q, n_d) if shortlist is None else 0, np.float32)
        order = np.argsort(np.diff(doff), kind="stable")  # sorted position -> document index
        docs_sorted = _Docs(_rows(dmat, doff, order), np.diff(doff)[order])
        if shortlist is None:
            result = np.zeros((n_q, n_d), np.float32)
            tasks = self._block_tasks(qmat, qoff, int(doff[-1]))

            def place(meta: Any, outs: list[np.ndarray]) -> None:
                result[np.ix_(meta, order)] = outs[0]
        else:
            pairs = np.asarray(shortlist, np.int64).reshape(-1, 2)
            if len(pairs) and ((pairs.min(0) < 0).any() or (pairs.max(0) >= [n_q, n_d]).any()):
                raise ValueError("shortlist indices out of range")
            result = np.zeros(len(pairs), np.float32)
            pos = np.empty(n_d, np.int64)
            pos[order] = np.arange(n_d)
            tasks = self._shortlist_tasks(qmat, qoff, pairs[:, 0], pos[pairs[:, 1]])

            def place(meta: Any, outs: list[np.ndarray]) -> None:
                for (idx, inverse), out in zip(meta, outs):
                    result[idx] = out[inverse]
        # a spawn pool costs ~1 s per worker to start (~5 s from a script importing torch): small problems
        # run faster in this process
        serial = result.size < self.pool_min_pairs or (shortlist is not None and result.size <= self.pairs_per_task)
        stats = self._execute(tasks, docs_sorted, place, workers=1 if serial else self.workers)
        self.last_stats = {"wall_s": time.perf_counter() - t0, "workers": 1 if serial else self.workers,
                           "pairs": float(result.size), **dict(zip(STAT_KEYS, stats.tolist()))}
        return result

    def _block_tasks(self, qmat: np.ndarray, qoff: np.ndarray, doc_rows: int) -> Iterator[tuple[Any, list[Item]]]:
        """Runs of equal-size queries (sorted by size), cut so one block of S fits ``block_bytes``."""
        sizes = np.diff(qoff)
        q_order = np.argsort(sizes, kind="stable")
        max_rows = max(1, self.block_bytes // (4 * max(doc_rows, 1)))
        cuts = [0, *(np.flatnonzero(np.diff(sizes[q_order])) + 1).tolist(), len(q_order)]
        for a, b in zip(cuts[:-1], cuts[1:]):
            nq = int(sizes[q_order[a]])
            step = max(1, max_rows // nq)
            for s in range(a, b, step):
                idx = q_order[s : min(s + step, b)]
                yield idx, [(_rows(qmat, qoff, idx), nq, None)]

    def _shortlist_tasks(self, qmat: np.ndarray, qoff: np.ndarray, q: np.ndarray,
                         dpos: np.ndarray) -> Iterator[tuple[Any, list[Item]]]:
        """One item per query (its unique shortlisted documents); items batched to ~pairs_per_task."""
        by_query = np.lexsort((dpos, q))
        starts = [0, *(np.flatnonzero(np.diff(q[by_query])) + 1).tolist(), len(q)]
        meta: list[tuple[np.ndarray, np.ndarray]] = []
        items: list[Item] = []
        n_pairs = 0
        for a, b in zip(starts[:-1], starts[1:]):
            idx = by_query[a:b]
            qk = int(q[idx[0]])
            sel, inverse = np.unique(dpos[idx], return_inverse=True)
            meta.append((idx, inverse))
            items.append((qmat[qoff[qk] : qoff[qk + 1]], int(qoff[qk + 1] - qoff[qk]), sel))
            n_pairs += len(sel)
            if n_pairs >= self.pairs_per_task:
                yield meta, items
                meta, items, n_pairs = [], [], 0
        if items:
            yield meta, items

    def _execute(self, tasks: Iterator[tuple[Any, list[Item]]], docs: _Docs, place: Any, workers: int) -> np.ndarray:
        """Run tasks in-process (workers == 1) or in a spawn pool with at most 2 tasks per worker queued."""
        stats = np.zeros(len(STAT_KEYS))
        if workers <= 1:
            state = {"docs": docs, "groups": docs.groups(), "normalise": self.normalise, "shortcuts": self.shortcuts}
            for meta, items in tasks:
                outs, st = _run_task(items, state)
                place(meta, outs)
                stats += st
            return stats
        blas = max(1, _cpu_count() // workers)
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                 initargs=(docs.mat, docs.sizes, self.normalise, self.shortcuts, blas)) as pool:
            pending: dict[Future, Any] = {}
            for meta, items in tasks:  # bounded in flight: memory stays O(workers x block)
                pending[pool.submit(_run_task, items)] = meta
                while len(pending) >= 2 * workers:
                    stats += self._collect(pending, place)
            while pending:
                stats += self._collect(pending, place)
        return stats

    @staticmethod
    def _collect(pending: dict[Future, Any], place: Any) -> np.ndarray:
        """Wait for at least one task, place its scores, return its stats."""
        done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
        stats = np.zeros(len(STAT_KEYS))
        for fut in done:
            outs, st = fut.result()
            place(pending.pop(fut), outs)
            stats += st
        return stats
