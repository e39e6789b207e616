"""Retrieval losses of thesis section 5.4.1: InfoNCE (eq. 6) and triplet (eq. 7).

Both functions take a score matrix ``scores[i, j] = sim(query_i, candidate_j)`` (typically
cosine similarities, shape ``(B, N)``; ``N == B`` for the usual in-batch setting) and the
positives of each query, given either as

* an index tensor of shape ``(B,)`` (``positives[i]`` is the column of query i's positive), or
* a boolean mask of shape ``(B, N)`` (``mask[i, j]`` is True when candidate j matches query i),
  which allows several positives per query, e.g. several captions of one image in the
  candidate set (the batch contamination case of section 5.4.2).

``symmetric=True`` averages the query->candidate loss (rows) with the candidate->query loss
(columns, i.e. the same function on ``scores.T``); in the column direction only candidates
that are the positive of at least one query are counted.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["positive_mask", "info_nce", "triplet"]


def positive_mask(scores: Tensor, positives: Tensor) -> Tensor:
    """Return a boolean ``(B, N)`` positive mask from an index ``(B,)`` or mask ``(B, N)`` tensor."""
    if scores.dim() != 2:
        raise ValueError(f"scores must be 2-D (B, N), got shape {tuple(scores.shape)}")
    b, n = scores.shape
    if positives.dtype == torch.bool:
        if positives.shape != scores.shape:
            raise ValueError(f"positive mask shape {tuple(positives.shape)} != scores shape {(b, n)}")
        return positives.to(scores.device)
    if positives.dim() != 1 or positives.shape[0] != b:
        raise ValueError(f"positive indices must have shape ({b},), got {tuple(positives.shape)}")
    idx = positives.to(device=scores.device, dtype=torch.long)
    if bool(((idx < 0) | (idx >= n)).any()):
        raise ValueError(f"positive indices must lie in [0, {n})")
    mask = torch.zeros(b, n, dtype=torch.bool, device=scores.device)
    mask[torch.arange(b, device=scores.device), idx] = True
    return mask


def _info_nce_rows(scores: Tensor, mask: Tensor, temperature: float) -> Tensor:
    """Per-row InfoNCE: -mean_{p in P_i} log softmax(s_i / tau)_p, over rows with >= 1 positive."""
    log_prob = torch.log_softmax(scores / temperature, dim=1)
    n_pos = mask.sum(dim=1)
    keep = n_pos > 0
    # masked_fill instead of multiplication so -inf scores outside the positives cannot give NaN
    pos_log_prob = log_prob.masked_fill(~mask, 0.0).sum(dim=1)
    return -(pos_log_prob[keep] / n_pos[keep])


def info_nce(
    scores: Tensor,
    positives: Tensor,
    temperature: float = 0.07,
    symmetric: bool = False,
) -> Tensor:
    """InfoNCE loss (eq. 6), averaged over queries.

    For query i with positive set P_i the loss is
    ``-1/|P_i| * sum_{p in P_i} log(exp(s_ip / tau) / sum_j exp(s_ij / tau))``: the denominator
    runs over all N candidates (other positives included, as in eq. 6), and with a single
    positive this is exactly eq. 6 / cross-entropy over the row.

    Args:
        scores: ``(B, N)`` similarities of query i vs candidate j.
        positives: ``(B,)`` positive indices or ``(B, N)`` boolean positive mask.
        temperature: tau > 0; smaller values sharpen the softmax.
        symmetric: also compute the candidate->query loss on ``scores.T`` and average both.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    mask = positive_mask(scores, positives)
    if not bool(mask.any(dim=1).all()):
        raise ValueError("every query needs at least one positive candidate")
    loss = _info_nce_rows(scores, mask, temperature).mean()
    if symmetric:
        loss = 0.5 * (loss + _info_nce_rows(scores.t(), mask.t(), temperature).mean())
    return loss


def _triplet_rows(scores: Tensor, mask: Tensor, margin: float, hardest: bool) -> Tensor:
    """Per-row triplet hinge; rows lacking a positive or a negative are skipped."""
    neg = ~mask
    keep = mask.any(dim=1) & neg.any(dim=1)
    s, pos, neg = scores[keep], mask[keep], neg[keep]
    if s.shape[0] == 0:
        return scores.sum() * 0.0  # keep the graph so backward() still works
    if hardest:
        # hardest negative per query (VSE++ style), hinge against each positive
        hard_neg = s.masked_fill(~neg, float("-inf")).amax(dim=1, keepdim=True)
        hinge = torch.relu(margin - s + hard_neg).masked_fill(~pos, 0.0)
        return hinge.sum(dim=1) / pos.sum(dim=1)
    # all (positive, negative) pairs of the row: hinge[i, p, n]
    hinge = torch.relu(margin - s.unsqueeze(2) + s.unsqueeze(1))
    pair = pos.unsqueeze(2) & neg.unsqueeze(1)
    return hinge.masked_fill(~pair, 0.0).sum(dim=(1, 2)) / pair.sum(dim=(1, 2))


def triplet(
    scores: Tensor,
    positives: Tensor,
    margin: float = 0.2,
    hardest: bool = False,
    symmetric: bool = False,
) -> Tensor:
    """Triplet margin loss (eq. 7): ``max(0, margin - s(q, p) + s(q, n))``, averaged over queries.

    Per query the hinge is averaged over all (positive, negative) pairs, or, with
    ``hardest=True``, taken against the single hardest (highest-scoring) negative and averaged
    over positives. Queries with no negative (or no positive) are skipped; if none is left the
    result is a zero that still carries a graph.

    Args:
        scores: ``(B, N)`` similarities of query i vs candidate j.
        positives: ``(B,)`` positive indices or ``(B, N)`` boolean positive mask.
        margin: delta > 0 in eq. 7.
        hardest: use the hardest negative per query instead of the mean over negatives.
        symmetric: also compute the candidate->query loss on ``scores.T`` and average both.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    mask = positive_mask(scores, positives)

    def _mean(rows: Tensor) -> Tensor:
        return rows.mean() if rows.dim() > 0 and rows.numel() > 0 else rows.sum()

    loss = _mean(_triplet_rows(scores, mask, margin, hardest))
    if symmetric:
        loss = 0.5 * (loss + _mean(_triplet_rows(scores.t(), mask.t(), margin, hardest)))
    return loss
