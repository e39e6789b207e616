"""Scene matching: late interaction between sets of vectors (thesis sec. 5.3.3, eq. 2).

Q-MAM ("max-mean"): LI(q, d) = 1/N_q * sum_i max_j <E_q(i), E_d(j)>. "mean-mean": the mean of all
pairwise similarities, which equals <mean_i E_q(i), mean_j E_d(j)>.

Sets have variable sizes and are stored packed: one (N_total, D) matrix and offsets
(n_items + 1,), item k owning rows offsets[k]:offsets[k+1]. For scoring, document sets are padded
to the largest set once; padded slots get a -inf bias (not 0: similarities can be negative, so a
zero would win the max over a set of negative scores). Query sets are padded per block and
padded rows carry zero weight in the mean. V2S is a query set of one vector, S2V a document set
of one vector, so the three modes share this one scorer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rsretrieval.matching.cosine import l2_normalise


@dataclass
class PackedVectors:
    """Variable-size sets of vectors: ``vectors`` (N_total, D) and ``offsets`` (n_items + 1,)."""

    vectors: torch.Tensor
    offsets: torch.Tensor

    def __post_init__(self) -> None:
        if not isinstance(self.vectors, torch.Tensor):
            self.vectors = torch.as_tensor(np.asarray(self.vectors, dtype=np.float32))
        self.offsets = torch.as_tensor(self.offsets, dtype=torch.int64)
        if self.offsets[0] != 0 or self.offsets[-1] != len(self.vectors) or (self.offsets.diff() < 1).any():
            raise ValueError("offsets must start at 0, end at len(vectors) and give every item >= 1 vector")

    @classmethod
    def from_lists(cls, sets: list[np.ndarray | torch.Tensor]) -> "PackedVectors":
        sizes = [len(s) for s in sets]
        vectors = torch.cat([torch.as_tensor(np.asarray(s), dtype=torch.float32).reshape(n, -1)
                             for s, n in zip(sets, sizes)])
        return cls(vectors, torch.tensor([0, *np.cumsum(sizes)], dtype=torch.int64))

    @classmethod
    def singletons(cls, vectors: np.ndarray | torch.Tensor) -> "PackedVectors":
        """One vector per item (the V side of V2S / S2V)."""
        v = torch.as_tensor(np.asarray(vectors) if not isinstance(vectors, torch.Tensor) else vectors).float()
        return cls(v, torch.arange(len(v) + 1, dtype=torch.int64))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def sizes(self) -> torch.Tensor:
        return self.offsets.diff()

    def item(self, k: int) -> torch.Tensor:
        return self.vectors[self.offsets[k] : self.offsets[k + 1]]

    def padded(self, start: int = 0, end: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Items start:end as (n, L_max, D) zero-padded and a (n, L_max) bool mask of real rows."""
        end = len(self) if end is None else end
        sizes = self.sizes[start:end]
        n, lmax, dim = end - start, int(sizes.max()), self.vectors.shape[1]
        rows = self.vectors[self.offsets[start] : self.offsets[end]]
        if int(sizes.min()) == lmax:  # equal sizes (e.g. uniform crops): a view, no copy
            return rows.view(n, lmax, dim), torch.ones((n, lmax), dtype=torch.bool)
        mask = torch.arange(lmax)[None, :] < sizes[:, None]
        out = self.vectors.new_zeros((n, lmax, dim))
        out[mask.to(out.device)] = rows
        return out, mask

    def means(self) -> torch.Tensor:
        """Mean vector of every item. Shape: (n_items, D)."""
        idx = torch.repeat_interleave(torch.arange(len(self)), self.sizes)
        sums = torch.zeros((len(self), self.vectors.shape[1]), dtype=self.vectors.dtype,
                           device=self.vectors.device).index_add_(0, idx.to(self.vectors.device), self.vectors)
        return sums / self.sizes.to(sums.device, sums.dtype)[:, None]

    def normalised(self) -> "PackedVectors":
        return PackedVectors(l2_normalise(self.vectors), self.offsets)

    def to(self, device: str | torch.device) -> "PackedVectors":
        return PackedVectors(self.vectors.to(device), self.offsets)


class LateInteractionScorer:
    """Block scorer: ``__call__(start, end)`` -> (end - start, n_documents) late-interaction scores.

    Vectors are L2-normalised (so pair scores are cosines, as in V2V). One fp32 GEMM per block:
    (block query vectors, D) x (D, documents x L_max) with the padding bias folded into ``addmm``,
    then a max over each document's slots and a weighted mean over each query's vectors.
    """

    def __init__(self, queries: PackedVectors, documents: PackedVectors, aggregation: str = "max-mean",
                 device: str | torch.device = "cpu") -> None:
        if queries.vectors.shape[1] != documents.vectors.shape[1]:
            raise ValueError(f"query dim {queries.vectors.shape[1]} != document dim {documents.vectors.shape[1]}")
        if aggregation not in ("max-mean", "mean-mean"):
            raise ValueError(f"aggregation must be 'max-mean' or 'mean-mean', got {aggregation!r}")
        self.aggregation = aggregation
        self.queries = queries.normalised().to(device)
        self.n_docs = len(documents)
        docs = documents.normalised().to(device)
        if aggregation == "mean-mean":
            self.doc_means = docs.means()
            self.query_means = self.queries.means()
            return
        padded, mask = docs.padded()
        self.doc_slots = padded.shape[1]
        self.doc_matrix_t = padded.reshape(-1, padded.shape[2]).T.contiguous()  # (D, n_docs * L)
        self.doc_bias = None  # equal-size document sets need no padding bias: a plain GEMM
        if not bool(mask.all()):
            self.doc_bias = torch.zeros(mask.numel(), device=device)
            self.doc_bias[~mask.reshape(-1).to(device)] = float("-inf")

    def __call__(self, start: int, end: int) -> torch.Tensor:
        if self.aggregation == "mean-mean":
            return self.query_means[start:end] @ self.doc_means.T
        q, qmask = self.queries.padded(start, end)  # (n, Lq, D), (n, Lq)
        n, lq, dim = q.shape
        flat = q.reshape(n * lq, dim)
        sims = flat @ self.doc_matrix_t if self.doc_bias is None else torch.addmm(self.doc_bias, flat, self.doc_matrix_t)
        best = sims.view(n * lq, self.n_docs, self.doc_slots).amax(dim=2).view(n, lq, self.n_docs)
        if bool(qmask.all()):
            return best.mean(dim=1)
        weights = qmask.to(best.device, best.dtype) / qmask.sum(1, keepdim=True).to(best.device, best.dtype)
        return torch.einsum("nqd,nq->nd", best, weights)  # padded query rows carry weight 0


def late_interaction_reference(query: torch.Tensor, document: torch.Tensor, aggregation: str = "max-mean") -> float:
    """Eq. 2 for one (query set, document set) pair, on L2-normalised copies: the test oracle."""
    s = l2_normalise(query) @ l2_normalise(document).T  # (N_q, N_d)
    return float(s.max(dim=1).values.mean() if aggregation == "max-mean" else s.mean())
