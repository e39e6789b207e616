"""Synthetic graph pairs with a known answer, for tests and training benchmarks (no text embedder needed).

Every image graph holds 3-7 nodes drawn from a vocabulary of random unit vectors, with chain edges
labelled by other vocabulary vectors; its caption graph keeps 2-4 of those nodes (and the edges
between them) with Gaussian noise added. A matcher that learns to read node overlap ranks the gold
image first; chance mR is ~ (1 + 5 + 10) / 3 / n_images * 100.
"""

from __future__ import annotations

import numpy as np
import torch

from rsretrieval.graphs.tensors import GraphBatch
from rsretrieval.matching.late_interaction import PackedVectors
from rsretrieval.training.graph_loop import GraphPairs


def _batch(graphs: list[tuple[np.ndarray, list[tuple[int, int]], np.ndarray]]) -> GraphBatch:
    sizes = [len(n) for n, _, _ in graphs]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    edges = [np.asarray(e, np.int64).reshape(-1, 2) + offsets[k] for k, (_, e, _) in enumerate(graphs)]
    eoff = np.concatenate([[0], np.cumsum([len(e) for e in edges])])
    return GraphBatch(PackedVectors(torch.tensor(np.concatenate([n for n, _, _ in graphs]), dtype=torch.float32),
                                    torch.tensor(offsets)),
                      torch.tensor(np.concatenate(edges).T if len(eoff) > 1 and eoff[-1] else np.zeros((2, 0), np.int64)),
                      torch.tensor(np.concatenate([a for _, _, a in graphs]), dtype=torch.float32).reshape(-1, graphs[0][0].shape[1]),
                      torch.tensor(eoff))


def synthetic_pairs(n_images: int, seed: int = 0, dim: int = 32, vocab: int = 24, noise: float = 0.3,
                    captions_per_image: int = 1, global_dim: int | None = None) -> GraphPairs:
    """``n_images`` image graphs and ``captions_per_image`` caption graphs each (see module doc).

    ``global_dim``: also give unit global vectors (VG2VG): an image's vector plus noise for its captions.
    """
    rng = np.random.default_rng(seed)
    words = rng.standard_normal((vocab, dim))
    words /= np.linalg.norm(words, axis=1, keepdims=True)
    images, captions, owner = [], [], []
    for i in range(n_images):
        k = int(rng.integers(3, 8))
        ids = rng.choice(vocab, size=k, replace=False)
        chain = [(a, a + 1) for a in range(k - 1)]
        labels = words[rng.integers(0, vocab, size=len(chain))]
        images.append((words[ids], chain, labels))
        for _ in range(captions_per_image):
            keep = np.sort(rng.choice(k, size=int(rng.integers(2, min(4, k) + 1)), replace=False))
            pos = {int(a): j for j, a in enumerate(keep)}
            sub = [(pos[a], pos[b]) for a, b in chain if a in pos and b in pos]
            sub_labels = np.array([labels[c] for c, (a, b) in enumerate(chain) if a in pos and b in pos]).reshape(-1, dim)
            nodes = words[ids[keep]] + noise * rng.standard_normal((len(keep), dim)) / np.sqrt(dim)
            captions.append((nodes, sub, sub_labels))
            owner.append(i)
    qv = dv = None
    if global_dim:
        dv = rng.standard_normal((n_images, global_dim))
        qv = dv[owner] + 1.5 * rng.standard_normal((len(owner), global_dim))  # a weak global signal
        qv, dv = (torch.tensor(v / np.linalg.norm(v, axis=1, keepdims=True), dtype=torch.float32) for v in (qv, dv))
    return GraphPairs(_batch(captions), _batch(images), torch.tensor(owner), qv, dv)
