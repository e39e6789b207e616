"""Graph-matcher training (thesis sec. 5.4): batched pair scores vs per-pair, learning, resume, early stop."""

from __future__ import annotations

import pytest
import torch

from rsretrieval.config import GMNConfig, GraphEncoderConfig, GraphTrainingConfig
from rsretrieval.training.graph_loop import MemoryReporter, TrainData, mean_recall_of, train_graph_matcher, validate
from rsretrieval.training.graph_model import (GraphMatcher, load_matcher_file, matcher_from_state, save_matcher,
                                              select_graphs, training_gmn_config)
from rsretrieval.training.synthetic_graphs import synthetic_pairs

pytest.importorskip("torch_geometric")


@pytest.fixture(scope="module")
def data() -> TrainData:
    return TrainData(synthetic_pairs(256, seed=1, captions_per_image=2), synthetic_pairs(80, seed=2))


def test_select_graphs_matches_single_graphs(data: TrainData) -> None:
    batch = data.train.docs
    idx = [7, 0, 7, 3]
    sub = select_graphs(batch, idx)
    assert len(sub) == 4
    for j, k in enumerate(idx):
        for a, b in zip(sub.graph(j), batch.graph(k)):
            assert torch.equal(a, b)


@pytest.mark.parametrize("kind", ["vanilla", "gat"])
@pytest.mark.parametrize("use_global", [False, True])
def test_batch_scores_equal_per_pair(kind: str, use_global: bool) -> None:
    pairs = synthetic_pairs(12, seed=3, global_dim=8)
    enc = GraphEncoderConfig(kind=kind)
    model = GraphMatcher(enc, training_gmn_config(GMNConfig(bins=8, hidden=16, heads=2), enc, use_global), 32, 32)
    q, d = select_graphs(pairs.queries, list(range(5))), select_graphs(pairs.docs, list(range(6)))
    sim = pairs.global_cosine(slice(0, 5), slice(0, 6)) if use_global else None
    with torch.no_grad():
        gmn, node = model.batch_scores(q, d, sim)
        qn, dn = model.encode(q), model.encode(d)
        for i in range(5):
            for j in range(6):
                a, b = qn.item(i)[None], dn.item(j)[None]
                sv = sim[i, j].reshape(1) if use_global else None
                assert gmn[i, j] == pytest.approx(float(model.gmn.pair_scores(a, None, b, None, sv)[0]), abs=1e-5)
                s = qn.item(i) @ dn.item(j).T
                assert node[i, j] == pytest.approx(float(s.max(1).values.mean()), abs=1e-6)


def test_mean_recall_of_counts_ties_against_gold() -> None:
    scores = torch.tensor([[0.9, 0.1, 0.0], [0.5, 0.5, 0.5]])
    # query 0 rank 1; query 1 tied with everything -> rank 3 (<= 5, <= 10, not <= 1)
    assert mean_recall_of(scores, torch.tensor([0, 1])) == pytest.approx((50 + 100 + 100) / 3)


@pytest.mark.parametrize("kind", ["vanilla", "gat"])
def test_training_beats_untrained(data: TrainData, kind: str) -> None:
    enc = GraphEncoderConfig(kind=kind)
    gmn = training_gmn_config(GMNConfig(), enc, False)
    before = validate(GraphMatcher(enc, gmn, 32, 32), data.val)["val_mr"]
    rep = MemoryReporter()
    state = train_graph_matcher(data, GraphTrainingConfig(epochs=4, batch_size=32, lr=2e-3), enc, gmn, rep)
    assert len(rep.history) == state["epoch"] == 4
    assert state["best_mr"] > before + 20, (before, rep.history)
    assert rep.history[-1]["train_loss"] < rep.history[0]["train_loss"]


def test_resume_gives_the_same_run_as_no_interruption(data: TrainData) -> None:
    enc = GraphEncoderConfig(kind="gat")
    gmn = training_gmn_config(GMNConfig(), enc, False)
    cfg = GraphTrainingConfig(epochs=3, batch_size=32, patience=5)
    whole = MemoryReporter()
    train_graph_matcher(data, cfg, enc, gmn, whole)
    first = MemoryReporter()

    class Stop(Exception):
        pass

    def crash(epoch: int) -> None:
        if epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        train_graph_matcher(data, cfg, enc, gmn, first, on_epoch=crash)
    resumed = MemoryReporter(first.state)  # the last checkpoint (epoch 2)
    train_graph_matcher(data, cfg, enc, gmn, resumed)
    assert [h["epoch"] for h in resumed.history] == [3]
    assert resumed.history[0]["val_mr"] == pytest.approx(whole.history[-1]["val_mr"], abs=1e-6)
    assert resumed.history[0]["train_loss"] == pytest.approx(whole.history[-1]["train_loss"], rel=1e-5)


def test_early_stopping_keeps_the_best_epoch(data: TrainData) -> None:
    enc = GraphEncoderConfig(kind="vanilla")
    gmn = training_gmn_config(GMNConfig(), enc, False)
    rep = MemoryReporter()
    # a huge learning rate diverges after the first updates: validation stops improving
    state = train_graph_matcher(data, GraphTrainingConfig(epochs=12, batch_size=32, lr=3.0, patience=2), enc, gmn, rep)
    assert state["stopped"] and state["epoch"] < 12
    best = max(h["val_mr"] for h in rep.history)
    assert state["best_mr"] == best
    model = GraphMatcher(enc, gmn, 32, 32)
    model.load_state_dict(state["best_model"])
    assert validate(model, data.val.head(600))["val_mr"] == pytest.approx(best, abs=1e-6)


def test_checkpoint_file_round_trip(tmp_path, data: TrainData) -> None:
    enc = GraphEncoderConfig(kind="gat")
    model = GraphMatcher(enc, training_gmn_config(GMNConfig(), enc, False), 32, 32, seed=4)
    head = GraphMatcher(enc, training_gmn_config(GMNConfig(), enc, True), 32, 32, seed=5).gmn
    path = save_matcher(tmp_path / "m.pt", "trained", model, {"note": "x"}, {"rs-tiny": head})
    state = load_matcher_file(path)
    back = matcher_from_state(state)
    assert validate(back, data.val)["val_mr"] == pytest.approx(validate(model, data.val)["val_mr"])
    assert matcher_from_state(state, "rs-tiny").gmn.cfg.use_global
    with pytest.raises(KeyError, match="no VG2VG head for backbone 'other'"):
        matcher_from_state(state, "other")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(Exception):
        load_matcher_file(tmp_path / "bad.pt")
    with pytest.raises(FileNotFoundError, match="rayjobs/train.py"):
        load_matcher_file(tmp_path / "missing.pt")


def test_vg2vg_warm_start_scores_like_the_g2g_gmn() -> None:
    from rsretrieval.training.graph_model import warm_start_vg2vg

    pairs = synthetic_pairs(10, seed=5, global_dim=8)
    enc = GraphEncoderConfig(kind="vanilla")
    g2g = GraphMatcher(enc, training_gmn_config(GMNConfig(), enc, False), 32, 32, seed=1)
    vg = GraphMatcher(enc, training_gmn_config(GMNConfig(), enc, True), 32, 32, seed=2)
    vg.gmn.load_state_dict(warm_start_vg2vg(g2g.gmn.state_dict()))
    with torch.no_grad():
        a, _ = g2g.batch_scores(pairs.queries, pairs.docs)
        b, _ = vg.batch_scores(pairs.queries, pairs.docs, pairs.global_cosine(slice(None), slice(None)))
    assert torch.allclose(a, b, atol=1e-6)  # the cosine enters with weight 0 until training moves it
