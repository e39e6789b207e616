"""V2V: cosine similarity between global vectors (thesis eq. 1), as a block scorer."""

from __future__ import annotations

import numpy as np
import torch


def l2_normalise(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """fp32 rows of unit L2 norm (zero rows stay zero). Shapes: (n, D) -> (n, D)."""
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).float()
    return t / t.norm(dim=-1, keepdim=True).clamp_min(1e-12)


class CosineScorer:
    """Scores blocks of queries against all documents with one fp32 matmul per block.

    Shapes: queries (Q, D), documents (N, D); ``__call__(start, end)`` -> (end - start, N).
    """

    def __init__(self, queries: np.ndarray | torch.Tensor, documents: np.ndarray | torch.Tensor,
                 device: str | torch.device = "cpu") -> None:
        self.queries = l2_normalise(queries).to(device)
        self.documents = l2_normalise(documents).to(device)
        if self.queries.shape[1] != self.documents.shape[1]:
            raise ValueError(
                f"query dim {self.queries.shape[1]} != document dim {self.documents.shape[1]}"
            )

    def __call__(self, start: int, end: int) -> torch.Tensor:
        return self.queries[start:end] @ self.documents.T
