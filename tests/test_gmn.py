"""GMN (eqs. 3-5): batched all-pairs scoring against the per-pair reference; graph encoders."""

from __future__ import annotations

import itertools

import pytest
import torch

from rsretrieval.config import GMNConfig, GraphEncoderConfig
from rsretrieval.matching.gmn import GraphMatchingNetwork, gmn_reference
from rsretrieval.matching.late_interaction import PackedVectors

DIM = 12


def _packed(sizes: list[int], g: torch.Generator, dim: int = DIM) -> PackedVectors:
    return PackedVectors(torch.randn(sum(sizes), dim, generator=g),
                         torch.tensor([0, *itertools.accumulate(sizes)], dtype=torch.int64))


def _model(seed: int = 0, **kw) -> GraphMatchingNetwork:
    """A GMN whose weights are re-drawn larger than the default init, so that scores spread widely and
    a histogram entry in a different bin (or a padded node leaking in) would show."""
    m = GraphMatchingNetwork(GMNConfig(bins=kw.pop("bins", 8), hidden=kw.pop("hidden", 16), **kw), seed=seed)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.7)
    return m


def _reference_matrix(m, q: PackedVectors, d: PackedVectors, sv: torch.Tensor | None) -> torch.Tensor:
    return torch.tensor([[gmn_reference(m, q.item(i), d.item(j), None if sv is None else float(sv[i, j]))
                          for j in range(len(d))] for i in range(len(q))])


Q_SIZES = [1, 4, 2, 7, 1, 3, 5, 2, 6]  # incl. 1-node graphs; unsorted so the size sort is exercised
D_SIZES = [3, 1, 8, 2, 5, 1, 4]


@pytest.mark.parametrize("hist_range,soft,use_global,heads", [
    (r, s, u, h) for r, s, u, h in itertools.product(["fixed", "dynamic"], [False, True], [True, False], [1, 3])])
def test_score_matrix_matches_per_pair_reference(hist_range: str, soft: bool, use_global: bool, heads: int) -> None:
    g = torch.Generator().manual_seed(1)
    q, d = _packed(Q_SIZES, g), _packed(D_SIZES, g)
    sv = torch.rand(len(q), len(d), generator=g) * 2 - 1 if use_global else None
    m = _model(hist_range=hist_range, soft_binning=soft, use_global=use_global, heads=heads)
    want = _reference_matrix(m, q, d, sv)
    assert want.std() > 0.1  # the check is sensitive: scores are far from constant
    for chunk, block in [(4, 3), (2, 1), (64, None)]:  # several paddings / block cuts
        got = m.score_matrix(q, d, sv, chunk_size=chunk, doc_block=block)
        torch.testing.assert_close(got, want, atol=2e-5, rtol=2e-5)


def _pad(sets: list[torch.Tensor], length: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Sets padded to ``length`` with random garbage (not zeros) and the real-row mask."""
    out = torch.randn(len(sets), length, sets[0].shape[1], generator=g)
    mask = torch.zeros(len(sets), length, dtype=torch.bool)
    for k, s in enumerate(sets):
        out[k, : len(s)], mask[k, : len(s)] = s, True
    return out, mask


def _pairs(q: PackedVectors, d: PackedVectors):
    return [(i, j) for i in range(len(q)) for j in range(len(d))]


@pytest.mark.parametrize("hist_range,soft", list(itertools.product(["fixed", "dynamic"], [False, True])))
def test_pair_scores_agree_with_score_matrix_and_ignore_padding(hist_range: str, soft: bool) -> None:
    g = torch.Generator().manual_seed(2)
    q, d = _packed(Q_SIZES, g), _packed(D_SIZES, g)
    sv = torch.rand(len(q), len(d), generator=g)
    m = _model(hist_range=hist_range, soft_binning=soft, heads=2)
    pairs = _pairs(q, d)
    qs, ds = [q.item(i) for i, _ in pairs], [d.item(j) for _, j in pairs]
    svec = torch.stack([sv[i, j] for i, j in pairs])
    scores = []
    for extra in (0, 3):  # more padded (garbage) rows change nothing
        qp, qm = _pad(qs, max(Q_SIZES) + extra, g)
        dp, dm = _pad(ds, max(D_SIZES) + extra, g)
        scores.append(m.pair_scores(qp, qm, dp, dm, svec).detach())
    torch.testing.assert_close(scores[0], scores[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(scores[0], m.score_matrix(q, d, sv, chunk_size=3, doc_block=2).reshape(-1),
                               atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("hist_range,use_global", list(itertools.product(["fixed", "dynamic"], [True, False])))
def test_soft_binning_gradients_reach_nodes_and_all_parameters(hist_range: str, use_global: bool) -> None:
    g = torch.Generator().manual_seed(3)
    m = GraphMatchingNetwork(GMNConfig(bins=6, hidden=8, heads=2, soft_binning=True, hist_range=hist_range,
                                       use_global=use_global))
    qn = torch.randn(4, 5, DIM, generator=g, requires_grad=True)
    dn = torch.randn(4, 6, DIM, generator=g, requires_grad=True)
    qm, dm = torch.ones(4, 5, dtype=torch.bool), torch.ones(4, 6, dtype=torch.bool)
    qm[0, 3:], dm[1, 2:] = False, False
    sv = torch.rand(4, generator=g) if use_global else None
    m.pair_scores(qn, qm, dn, dm, sv).square().sum().backward()
    assert qn.grad[qm].abs().sum(-1).gt(0).all() and dn.grad[dm].abs().sum(-1).gt(0).all()
    assert qn.grad[~qm].abs().max() == 0 and dn.grad[~dm].abs().max() == 0  # padding gets no gradient
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().max() > 0, name


def test_hard_binning_still_trains_the_parameters() -> None:
    m = GraphMatchingNetwork(GMNConfig(bins=6, hidden=8))
    g = torch.Generator().manual_seed(4)
    m.pair_scores(torch.randn(3, 4, DIM, generator=g), None, torch.randn(3, 5, DIM, generator=g), None,
                  torch.rand(3, generator=g)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().max() > 0 for p in m.parameters())


def _hand_s() -> torch.Tensor:
    return torch.tensor([[[-0.9, -0.2, 0.1, 0.3, 0.95, 1.0], [-1.0, -1.0, -0.6, -0.4, 0.6, 0.45]]])


def test_hard_histogram_of_hand_made_similarities() -> None:
    s = _hand_s()  # bins=4 over [-1, 1]: edges -0.5, 0, 0.5
    fixed = GraphMatchingNetwork(GMNConfig(bins=4, hist_range="fixed", soft_binning=False)).histograms(s)
    torch.testing.assert_close(fixed[0], torch.tensor([[1, 1, 2, 2], [3, 1, 1, 1]]) / 6.0)
    # dynamic: the pair's range is -1..1 here too; masking the last document node drops 1.0 and 0.45
    d_mask = torch.tensor([[True] * 5 + [False]])
    dyn = GraphMatchingNetwork(GMNConfig(bins=4, hist_range="dynamic", soft_binning=False)).histograms(s, None, d_mask)
    # range -1..0.95: edges -0.5125, -0.025, 0.4625
    torch.testing.assert_close(dyn[0], torch.tensor([[1, 1, 2, 1], [3, 1, 0, 1]]) / 5.0)


def test_soft_histogram_of_hand_made_similarities() -> None:
    s = torch.tensor([[[0.0, -1.0, 0.75]]])  # bins=4 centres ~ -0.75, -0.25, 0.25, 0.75
    hist = GraphMatchingNetwork(GMNConfig(bins=4, hist_range="fixed", soft_binning=True)).histograms(s)
    # 0.0: half to bins 1 and 2; -1.0: below the first centre, all to bin 0; 0.75: all to bin 3
    torch.testing.assert_close(hist[0, 0], torch.tensor([1.0, 0.5, 0.5, 1.0]) / 3.0, atol=1e-3, rtol=0)
    assert hist.sum().item() == pytest.approx(1.0)


def test_seeded_network_is_deterministic_and_leaves_the_global_rng_alone() -> None:
    g = torch.Generator().manual_seed(5)
    q, d = _packed([3, 2, 4], g), _packed([2, 5], g)
    sv = torch.rand(3, 2, generator=g)
    state = torch.random.get_rng_state()
    a, b, c = (GraphMatchingNetwork(GMNConfig(), seed=s) for s in (7, 7, 8))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.score_matrix(q, d, sv), b.score_matrix(q, d, sv))
    assert not torch.equal(a.score_matrix(q, d, sv), c.score_matrix(q, d, sv))


def test_vg2vg_requires_sim_vec_of_the_right_shape() -> None:
    g = torch.Generator().manual_seed(6)
    with pytest.raises(ValueError, match="sim_vec"):
        GraphMatchingNetwork(GMNConfig(use_global=True)).score_matrix(_packed([2], g), _packed([3], g))
    with pytest.raises(ValueError, match="shape"):
        GraphMatchingNetwork(GMNConfig()).score_matrix(_packed([2, 1], g), _packed([3], g), torch.zeros(1, 2))


def test_bench_reports_ratio_and_matches_reference() -> None:
    from rayjobs.bench_gmn import main

    out = main(["--queries", "30", "--images", "12", "--dim", "16", "--sample-pairs", "5", "--q-nodes", "4",
                "--d-nodes", "5"])
    assert out["ratio"] > 0 and out["max_abs_diff_vs_reference"] < 1e-5
    assert set(out["breakdown_seconds"]) >= {"similarity", "histogram", "mlp"}


# ---- graph encoders ------------------------------------------------------------------------------
def _graph(g: torch.Generator, n: int = 6, edge_dim: int = 5):
    x = torch.randn(n, DIM, generator=g)
    edge_index = torch.tensor([[0, 1, 2, 3, 4, 0, 2], [1, 2, 3, 4, 5, 2, 5]])  # nodes 2, 5: two in-edges
    return x, edge_index, torch.randn(7, edge_dim, generator=g)


@pytest.mark.parametrize("kind", ["vanilla", "gat", "gatv2", "transformer"])
def test_graph_encoder_shapes_normalisation_and_edges(kind: str) -> None:
    from rsretrieval.matching.graph_encoders import build_graph_encoder

    g = torch.Generator().manual_seed(7)
    torch.manual_seed(0)
    enc = build_graph_encoder(GraphEncoderConfig(kind=kind, layers=2, heads=2), DIM, 5)
    x, ei, ea = _graph(g)
    y = enc(x, ei, ea)
    assert y.shape == x.shape
    torch.testing.assert_close(y.norm(dim=1), torch.ones(len(x)))
    no_edges = enc(x, torch.zeros((2, 0), dtype=torch.long), torch.zeros((0, 5)))
    assert no_edges.shape == x.shape and torch.isfinite(no_edges).all()
    x_unit = x / x.norm(dim=1, keepdim=True)
    if kind == "vanilla":
        assert not list(enc.parameters())
        torch.testing.assert_close(y, x_unit) and torch.testing.assert_close(no_edges, x_unit)
        return
    assert (y - no_edges).abs().max() > 1e-4  # edges matter
    assert (y - enc(x, ei, torch.randn(ea.shape, generator=g))).abs().max() > 1e-4  # and so do their features
    assert (y * x_unit).sum(1).min() > 0.9  # untrained: close to the vanilla embedding


@pytest.mark.parametrize("kind", ["gat", "gatv2", "transformer"])
def test_graph_encoder_gradients_flow(kind: str) -> None:
    from rsretrieval.matching.graph_encoders import build_graph_encoder

    g = torch.Generator().manual_seed(8)
    torch.manual_seed(1)
    enc = build_graph_encoder(GraphEncoderConfig(kind=kind, layers=2, heads=3), DIM, 5)
    x, ei, ea = _graph(g)
    x.requires_grad_(True), ea.requires_grad_(True)
    target = torch.randn(x.shape, generator=g)
    (enc(x, ei, ea) * target).sum().backward()
    assert x.grad.abs().max() > 0 and ea.grad.abs().max() > 0
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().max() > 0, name
