"""Duplicate-aware retrieval metrics: what identical captions do to R@K, and the best R@K possible.

RS caption sets repeat themselves: in RSICD's test split 5,465 captions hold 3,331 distinct texts, and
many of those texts describe several images ("many buildings are in a dense residential area"). Every
caption is its own query with one gold image, so a ranker that sees only the text must give identical
texts identical rankings, and at most one of the images such a text describes can be ranked first.
Standard R@1 is therefore capped below 100 % by the data itself. Three views beside the standard one:

* **dedup** (:func:`dedup_mask`): each (normalised text, gold image) pair is one query; repeats of
  the same text for the same image are dropped (they only re-weight the metric).
* **multi-positive** (:func:`multi_positive_lists`, :func:`multi_positive_ranks`): a query's
  positives are all images described by a caption with the same normalised text, so ranking any of
  them first counts as a hit.
* **ceiling** (:func:`recall_ceiling`): the largest standard R@K any text-only ranker can reach. For a
  text describing images with n_1 >= n_2 >= ... captions each, the best ranking puts those images in
  that order, so at most n_1 + ... + n_K of the text's queries hit at K.

Texts are compared after :func:`rsretrieval.data.schema.normalise_caption` (lower case, single spaces,
no final period): the tokenizers of CLIP-style backbones lower-case too.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from rsretrieval.data.schema import normalise_caption
from rsretrieval.evaluation.metrics import DEFAULT_KS, Positives, tie_floor

__all__ = ["normalise_caption", "text_groups", "dedup_mask", "multi_positive_lists", "multi_positive_positives",
           "multi_positive_ranks", "multi_positive_ranks_grouped", "recall_ceiling", "duplicate_counts"]


def text_groups(texts: Sequence[str]) -> np.ndarray:
    """Group id of every query: queries with the same normalised text share one id (first-seen order)."""
    ids: dict[str, int] = {}
    return np.array([ids.setdefault(normalise_caption(t), len(ids)) for t in texts], dtype=np.int64)


def dedup_mask(texts: Sequence[str], gold: Sequence[int] | np.ndarray) -> np.ndarray:
    """True for the first query of every (normalised text, gold image) pair: the deduplicated query set."""
    seen: set[tuple[int, int]] = set()
    keep = np.zeros(len(texts), dtype=bool)
    for i, key in enumerate(zip(text_groups(texts).tolist(), np.asarray(gold).tolist())):
        if key not in seen:
            seen.add(key)
            keep[i] = True
    return keep


def multi_positive_lists(texts: Sequence[str], gold: Sequence[int] | np.ndarray) -> list[list[int]]:
    """Positives of each query: its gold image first, then every other image that a caption with the same
    normalised text describes (ascending)."""
    groups = text_groups(texts)
    gold = np.asarray(gold, dtype=np.int64)
    images: dict[int, set[int]] = defaultdict(set)
    for g, img in zip(groups.tolist(), gold.tolist()):
        images[g].add(img)
    return [[img] + sorted(images[g] - {img}) for g, img in zip(groups.tolist(), gold.tolist())]


def multi_positive_positives(texts: Sequence[str], gold: Sequence[int] | np.ndarray, n_images: int) -> Positives:
    """:func:`multi_positive_lists` as a :class:`Positives` matrix (for ``rank_queries`` with the scores)."""
    return Positives.from_lists(multi_positive_lists(texts, gold), n_images)


def multi_positive_ranks(ranks: np.ndarray, topk_idx: np.ndarray, topk_scores: np.ndarray,
                         positives: list[list[int]]) -> np.ndarray:
    """Multi-positive ranks from the saved top-k of a standard run, without rescoring.

    The rank with more positives is 1 + the number of non-positives scoring >= the best positive; it is
    never above the standard rank. When a positive is in the top-k list the rank is counted there (ties
    against the query, as in ``ranks_from_block``; a tie running past the end of the list keeps the
    standard rank, pessimistically). When none is, the standard rank is kept: the true value lies in
    (k, standard rank], so R@K is exact for every K <= k (barring a score tie at the end of the list).

    Shapes: ranks (Q,), topk_idx (Q, k), topk_scores (Q, k), positives: Q lists -> (Q,).
    """
    out = np.asarray(ranks, dtype=np.int64).copy()
    k = topk_idx.shape[1] if topk_idx.ndim == 2 else 0
    for q, pos in enumerate(positives):
        if len(pos) < 2 or k == 0:
            continue  # a single positive: the standard rank is the multi-positive rank
        is_pos = np.isin(topk_idx[q], pos)
        if not is_pos.any():
            continue
        best = tie_floor(topk_scores[q][is_pos].max())
        if topk_scores[q][-1] >= best and not is_pos[-1]:
            continue  # a visible tie with the best positive reaches the list's end: keep the standard rank
        out[q] = min(out[q], 1 + int(((topk_scores[q] >= best) & ~is_pos).sum()))
    return out


def multi_positive_ranks_grouped(ranks: np.ndarray, topk_idx: np.ndarray, topk_scores: np.ndarray,
                                 groups: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """:func:`multi_positive_ranks` with the positives given as each query's text group and gold image
    (any integer codes; ``topk_idx`` in the same codes): a query's positives are the gold images of its
    group. Vectorised, and memory O(Q x k): the positive lists themselves would hold, for a generic text
    ("many buildings are in a dense residential area"), every image it describes once per query."""
    out = np.asarray(ranks, dtype=np.int64).copy()
    topk_idx, topk_scores = np.asarray(topk_idx), np.asarray(topk_scores, np.float64)
    if topk_idx.ndim != 2 or topk_idx.shape[1] == 0 or len(out) == 0:
        return out
    groups, gold = np.asarray(groups, np.int64), np.asarray(gold, np.int64)
    m = int(max(gold.max(), topk_idx.max())) + 1
    pairs = np.unique(groups * m + gold)  # (text group, image) of every caption, once
    n_pos = np.bincount(pairs // m, minlength=int(groups.max()) + 1)[groups]
    is_pos = np.isin(groups[:, None] * m + topk_idx, pairs)
    best = tie_floor(np.where(is_pos, topk_scores, -np.inf).max(axis=1))
    tie_at_end = (topk_scores[:, -1] >= best) & ~is_pos[:, -1]  # keep the standard rank, pessimistically
    use = (n_pos >= 2) & is_pos.any(axis=1) & ~tie_at_end
    count = 1 + ((topk_scores >= best[:, None]) & ~is_pos).sum(axis=1)
    out[use] = np.minimum(out[use], count[use])
    return out


def recall_ceiling(texts: Sequence[str], gold: Sequence[int] | np.ndarray,
                   ks: Sequence[int] = DEFAULT_KS) -> dict[int, float]:
    """The largest standard R@K (%) that any ranker giving equal texts equal rankings can reach."""
    if len(texts) == 0:
        return {k: float("nan") for k in ks}
    per_text: dict[int, Counter] = defaultdict(Counter)
    for g, img in zip(text_groups(texts).tolist(), np.asarray(gold).tolist()):
        per_text[g][img] += 1
    counts = [sorted(c.values(), reverse=True) for c in per_text.values()]
    return {k: 100.0 * sum(sum(c[:k]) for c in counts) / len(texts) for k in ks}


def duplicate_counts(texts: Sequence[str], gold: Sequence[int] | np.ndarray) -> dict[str, int]:
    """Queries, distinct texts, deduplicated queries, and texts that describe more than one image."""
    lists = multi_positive_lists(texts, gold)
    groups = text_groups(texts)
    cross = {g for g, pos in zip(groups.tolist(), lists) if len(pos) > 1}
    return {"queries": len(texts), "distinct_texts": int(len(set(groups.tolist()))),
            "dedup_queries": int(dedup_mask(texts, gold).sum()), "cross_image_texts": len(cross),
            "queries_with_other_positives": int(sum(len(p) > 1 for p in lists))}
