"""Q-MAM and mean-mean late interaction: the batched scorer against a per-pair loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rsretrieval.evaluation.metrics import Positives, rank_queries
from rsretrieval.matching.cosine import CosineScorer
from rsretrieval.matching.late_interaction import LateInteractionScorer, PackedVectors, late_interaction_reference


def _random_sets(rng: np.random.Generator, n: int, max_len: int, dim: int) -> list[np.ndarray]:
    return [rng.standard_normal((int(rng.integers(1, max_len + 1)), dim)).astype(np.float32) for _ in range(n)]


@pytest.mark.parametrize("aggregation", ["max-mean", "mean-mean"])
def test_batched_scorer_matches_per_pair_loop(aggregation: str) -> None:
    rng = np.random.default_rng(0)
    qs, ds = _random_sets(rng, 23, 6, 16), _random_sets(rng, 17, 10, 16)
    scorer = LateInteractionScorer(PackedVectors.from_lists(qs), PackedVectors.from_lists(ds), aggregation)
    got = torch.cat([scorer(s, min(s + 5, len(qs))) for s in range(0, len(qs), 5)])
    want = torch.tensor([[late_interaction_reference(torch.from_numpy(q), torch.from_numpy(d), aggregation)
                          for d in ds] for q in qs])
    assert got.shape == (23, 17)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_equal_size_fast_path_matches_per_pair_loop() -> None:
    rng = np.random.default_rng(5)
    qs = [rng.standard_normal((3, 8)).astype(np.float32) for _ in range(6)]
    ds = [rng.standard_normal((4, 8)).astype(np.float32) for _ in range(5)]
    scorer = LateInteractionScorer(PackedVectors.from_lists(qs), PackedVectors.from_lists(ds))
    assert scorer.doc_bias is None
    want = torch.tensor([[late_interaction_reference(torch.from_numpy(q), torch.from_numpy(d)) for d in ds] for q in qs])
    torch.testing.assert_close(scorer(0, 6), want, atol=1e-5, rtol=1e-5)


def test_padding_is_minus_inf_not_zero() -> None:
    """A document whose every similarity is negative must score negative, not 0 from a padded slot."""
    q = np.array([[1.0, 0.0]], dtype=np.float32)
    docs = [np.array([[-1.0, 0.2]], dtype=np.float32),  # one vector: padded to the longest set
            np.array([[0.0, 1.0], [1.0, 1.0], [-1.0, -1.0]], dtype=np.float32)]
    score = LateInteractionScorer(PackedVectors.from_lists([q]), PackedVectors.from_lists(docs))(0, 1)
    assert score[0, 0] < 0
    assert score[0, 0].item() == pytest.approx(late_interaction_reference(torch.tensor(q), torch.tensor(docs[0])))


def test_singletons_reduce_to_cosine() -> None:
    rng = np.random.default_rng(1)
    q, d = rng.standard_normal((9, 8)), rng.standard_normal((7, 8))
    li = LateInteractionScorer(PackedVectors.singletons(q), PackedVectors.singletons(d))(0, 9)
    torch.testing.assert_close(li, CosineScorer(q, d)(0, 9), atol=1e-6, rtol=1e-6)


def test_v2s_is_max_over_image_scenes() -> None:
    rng = np.random.default_rng(2)
    q = rng.standard_normal((4, 8)).astype(np.float32)
    ds = _random_sets(rng, 5, 4, 8)
    li = LateInteractionScorer(PackedVectors.singletons(q), PackedVectors.from_lists(ds))(0, 4)
    cos = [CosineScorer(q, d)(0, 4).max(dim=1).values for d in ds]
    torch.testing.assert_close(li, torch.stack(cos, 1), atol=1e-6, rtol=1e-6)


def test_ranking_with_late_interaction_scorer() -> None:
    """The scorer plugs into the chunked ranker: a query made of its gold image's scenes ranks it first."""
    rng = np.random.default_rng(3)
    docs = _random_sets(rng, 30, 5, 32)
    queries = [d[: max(1, len(d) - 1)] + 0.01 * rng.standard_normal((max(1, len(d) - 1), 32)).astype(np.float32)
               for d in docs]
    scorer = LateInteractionScorer(PackedVectors.from_lists(queries), PackedVectors.from_lists(docs))
    ranks = rank_queries(scorer, Positives.from_gold(np.arange(30), 30), chunk_size=7, top_k=3)
    assert (ranks.ranks == 1).all()


def test_packed_vectors_validation() -> None:
    with pytest.raises(ValueError, match="offsets"):
        PackedVectors(torch.zeros(3, 2), torch.tensor([0, 2, 2, 3]))
    p = PackedVectors.from_lists([np.ones((2, 3)), np.zeros((1, 3))])
    padded, mask = p.padded()
    assert padded.shape == (2, 2, 3) and mask.tolist() == [[True, True], [True, False]]
    torch.testing.assert_close(p.means(), torch.tensor([[1.0, 1, 1], [0, 0, 0]]))
