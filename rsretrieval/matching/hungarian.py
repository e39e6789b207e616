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
  a pass over S, so by default it is tried only where distinct argmaxes are not unlikely, and pair by
  pair only where the assignment it may skip costs more than the check);
- a shortlist (k documents per query, the rerank path) is scored pair by pair on views of the rows
  (at k = 10-100, gathering and batching cost more than they saved: see :func:`_score_shortlist`);
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
    """Document node vectors sorted by graph size: ``mat`` (sum N_d, D), row-major so a shortlisted document is a
    view of consecutive rows; the GEMM reads it transposed without a copy. ``sizes`` ascending."""

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



def _score_shortlist(qv: np.ndarray, nq: int, docs: _Docs, sel: np.ndarray, normalise: str,
                     shortcuts: tuple[bool, bool | None], stats: np.ndarray) -> np.ndarray:
    """One query (``nq`` nodes) vs the documents at sorted positions ``sel``, pair by pair.

    At k = 10 to 100 documents per query, batching did not pay: measured here, one gather + stacked GEMM
    per batch of queries and the shortcuts as segment reductions ran at 0.34-0.37x a plain per-pair loop.
    S comes from views of the document rows (no copy); a one-node side is the max; the distinct-argmax
    shortcut is tried where :func:`_greedy_pays_per_pair` (or ``shortcuts[1]``) says so: best partners of the
    smaller side that are all different reach the upper bound (the sum of those maxima), so they are
    optimal, ties or not."""
    starts, sizes = docs.starts, docs.sizes
    min1, greedy = shortcuts
    t0 = time.perf_counter()
    out = np.empty(len(sel), np.float32)
    n_min1 = n_greedy = 0  # counted in Python: a numpy element update per pair cost ~5% of this loop
    for j, (a, z) in enumerate(zip(starts[sel].tolist(), sizes[sel].tolist())):
        s = qv @ docs.mat[a : a + z].T
        n = min(nq, z)
        denom = n if normalise == "matched" else nq
        if n == 1 and min1:
            out[j] = s.max() / denom
            n_min1 += 1
            continue
        if greedy or (greedy is None and _greedy_pays_per_pair(nq, z)):
            axis = 1 if nq <= z else 0  # best partner of each node of the smaller side
            best = s.argmax(axis=axis)
            ordered = np.sort(best)
            if (ordered[1:] != ordered[:-1]).all():
                out[j] = (s[np.arange(nq), best] if axis == 1 else s[best, np.arange(z)]).sum(dtype=np.float64) / denom
                n_greedy += 1
                continue
        r, c = linear_sum_assignment(s, maximize=True)
        out[j] = s[r, c].sum(dtype=np.float64) / denom
    stats[3] += n_min1
    stats[4] += n_greedy
    stats[5] += len(sel) - n_min1 - n_greedy
    stats[2] += time.perf_counter() - t0  # per pair, S, shortcuts and assignments are not timed apart
    return out


@functools.lru_cache(maxsize=65536)
def _greedy_pays(nq: int, size: int) -> bool:
    """Try the distinct-argmax shortcut on a block (auto mode, full matrix: the check is vectorised over all
    documents of one size) where uniform argmaxes of the smaller side would be distinct with probability
    >= 0.25. The shortlist path asks :func:`_greedy_pays_per_pair` instead."""
    return _p_distinct(min(nq, size), max(nq, size)) >= 0.25


@functools.lru_cache(maxsize=65536)
def _greedy_pays_per_pair(nq: int, size: int) -> bool:
    """Try the distinct-argmax shortcut on one pair (auto mode) where it saves time on average: its check
    costs ~5 us, an assignment ~3 + 1.5e-4 n^2 m us (n, m = smaller, larger side; scipy, measured here from
    3 x 5 to 64 x 64 and 40 x 120), and it succeeds with the birthday probability. Graphs below ~20 x 35
    nodes never qualify: there the check cost more than the assignment it would skip (0.58x vs 0.69x the
    bare loop at 4 x 6 nodes)."""
    n, m = min(nq, size), max(nq, size)
    return _p_distinct(n, m) * (3.0 + 1.5e-4 * n * n * m) > 5.0


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
    docs, stats, outs = st["docs"], np.zeros(len(STAT_KEYS)), []
    for qv, nq, sel in items:
        if sel is None or 2 * len(sel) > len(docs.sizes):  # most documents: the shared matrix, no gather
            out = _score_block(qv, nq, docs, st["groups"], st["normalise"], st["shortcuts"], stats)
            outs.append(out if sel is None else out[0, sel])
        else:
            outs.append(_score_shortlist(qv, nq, docs, sel, st["normalise"], st["shortcuts"], stats))
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
    (auto) tries the distinct-argmax check only where it pays: on the full matrix, where uniform argmaxes
    would be distinct with probability >= 0.25 (it runs vectorised over a block); on a shortlist, pair by
    pair, where it saves time on average (:func:`_greedy_pays_per_pair`). True / False force it.
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
        qvec, qoff = _numpy(queries.vectors), _numpy(queries.offsets).astype(np.int64)
        dvec, doff = _numpy(docs.vectors), _numpy(docs.offsets).astype(np.int64)
        if qvec.shape[1] != dvec.shape[1]:
            raise ValueError(f"query dim {qvec.shape[1]} != document dim {dvec.shape[1]}")
        n_q, n_d = len(qoff) - 1, len(doff) - 1
        if n_q == 0 or n_d == 0 or (shortlist is not None and len(np.asarray(shortlist)) == 0):
            self.last_stats = {}
            return np.zeros((n_q, n_d) if shortlist is None else 0, np.float32)
        if shortlist is None:
            order = np.argsort(np.diff(doff), kind="stable")  # sorted position -> document index
            docs_sorted = _Docs(_rows(_unit(dvec, np.float32), doff, order), np.diff(doff)[order])
            result = np.zeros((n_q, n_d), np.float32)
            tasks = self._block_tasks(_unit(qvec, np.float32), qoff, int(doff[-1]))

            def place(meta: Any, outs: list[np.ndarray]) -> None:
                result[np.ix_(meta, order)] = outs[0]
        else:
            pairs = np.asarray(shortlist, np.int64).reshape(-1, 2)
            if len(pairs) and ((pairs.min(0) < 0).any() or (pairs.max(0) >= [n_q, n_d]).any()):
                raise ValueError("shortlist indices out of range")
            result = np.zeros(len(pairs), np.float32)
            # only the graphs the shortlist names are copied and normalised (a rerank batch names a few
            # thousand of the store's graphs; normalising all of them cost as much as scoring)
            used_q, q_pos = np.unique(pairs[:, 0], return_inverse=True)
            used_d = np.unique(pairs[:, 1])
            order = used_d[np.argsort(np.diff(doff)[used_d], kind="stable")]  # used documents by size
            docs_sorted = _Docs(_unit(_rows(dvec, doff, order), np.float32), np.diff(doff)[order])
            pos = np.empty(n_d, np.int64)
            pos[order] = np.arange(len(order))
            q_off = np.concatenate([[0], np.cumsum(np.diff(qoff)[used_q])]).astype(np.int64)
            tasks = self._shortlist_tasks(_unit(_rows(qvec, qoff, used_q), np.float32), q_off, q_pos.reshape(-1),
                                          pos[pairs[:, 1]])

            def place(meta: Any, outs: list[np.ndarray]) -> None:
                idx, inverse = meta
                result[idx] = np.concatenate(outs)[inverse]
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
        """One item per query (its unique shortlisted documents); items batched to ~pairs_per_task. The meta of
        a task is (pair indices, their positions in the task's concatenated outputs): one scatter per task."""
        by_query = np.lexsort((dpos, q))
        qs, ds = q[by_query], dpos[by_query]
        new_doc = np.ones(len(qs), bool)  # first pair of each (query, document): the unique ones, in one pass
        new_doc[1:] = (qs[1:] != qs[:-1]) | (ds[1:] != ds[:-1])
        unique_pos = np.cumsum(new_doc) - 1  # position of each pair's (query, document) among the unique ones
        unique_docs = ds[new_doc]
        starts = [0, *(np.flatnonzero(np.diff(qs)) + 1).tolist(), len(q)]
        items: list[Item] = []
        task_start = 0
        for a, b in zip(starts[:-1], starts[1:]):
            qk = int(qs[a])
            u0, u1 = int(unique_pos[a]), int(unique_pos[b - 1]) + 1
            items.append((qmat[qoff[qk] : qoff[qk + 1]], int(qoff[qk + 1] - qoff[qk]), unique_docs[u0:u1]))
            if u1 - int(unique_pos[task_start]) >= self.pairs_per_task or b == len(q):
                yield (by_query[task_start:b], unique_pos[task_start:b] - unique_pos[task_start]), items
                items, task_start = [], b

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
