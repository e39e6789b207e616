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
    model = GraphMatcher(enc, training_gmn_config(GMNConfig(bins=8, hidden=16, heads=2), use_global), 32, 32)
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
    gmn = training_gmn_config(GMNConfig(), False)
    before = validate(GraphMatcher(enc, gmn, 32, 32), data.val)["val_mr"]
    rep = MemoryReporter()
    state = train_graph_matcher(data, GraphTrainingConfig(epochs=4, batch_size=32, lr=2e-3), enc, gmn, rep)
    assert len(rep.history) == state["epoch"] == 4
    assert state["best_mr"] > before + 20, (before, rep.history)
    assert rep.history[-1]["train_loss"] < rep.history[0]["train_loss"]


def test_resume_gives_the_same_run_as_no_interruption(data: TrainData) -> None:
    enc = GraphEncoderConfig(kind="gat")
    gmn = training_gmn_config(GMNConfig(), False)
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
    gmn = training_gmn_config(GMNConfig(), False)
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
    model = GraphMatcher(enc, training_gmn_config(GMNConfig(), False), 32, 32, seed=4)
    head = GraphMatcher(enc, training_gmn_config(GMNConfig(), True), 32, 32, seed=5)
    path = save_matcher(tmp_path / "m.pt", "trained", model, {"note": "x"}, {"rs-tiny": head}, "fine_grained")
    state = load_matcher_file(path)
    assert state["variant"] == "fine_grained"
    back = matcher_from_state(state)
    assert validate(back, data.val)["val_mr"] == pytest.approx(validate(model, data.val)["val_mr"])
    vg = matcher_from_state(state, "rs-tiny")
    assert vg.gmn.cfg.use_global
    for a, b in zip(vg.encoder.state_dict().values(), head.encoder.state_dict().values()):  # its own encoder
        assert torch.equal(a, b)
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
    g2g = GraphMatcher(enc, training_gmn_config(GMNConfig(), False), 32, 32, seed=1)
    vg = GraphMatcher(enc, training_gmn_config(GMNConfig(), True), 32, 32, seed=2)
    vg.gmn.load_state_dict(warm_start_vg2vg(g2g.gmn.state_dict()))
    with torch.no_grad():
        a, _ = g2g.batch_scores(pairs.queries, pairs.docs)
        b, _ = vg.batch_scores(pairs.queries, pairs.docs, pairs.global_cosine(slice(None), slice(None)))
    assert torch.allclose(a, b, atol=1e-6)  # the cosine enters with weight 0 until training moves it


def test_vg2vg_init_starts_end_to_end_training_at_the_g2g_matcher() -> None:
    from rsretrieval.training.graph_model import vg2vg_init

    pairs = synthetic_pairs(10, seed=5, global_dim=8)
    enc = GraphEncoderConfig(kind="gat")
    g2g = GraphMatcher(enc, training_gmn_config(GMNConfig(), False), 32, 32, seed=1)
    vg = GraphMatcher(enc, training_gmn_config(GMNConfig(), True), 32, 32, seed=2)
    vg.load_state_dict(vg2vg_init(g2g))
    with torch.no_grad():
        a, node_a = g2g.batch_scores(pairs.queries, pairs.docs)
        b, node_b = vg.batch_scores(pairs.queries, pairs.docs, pairs.global_cosine(slice(None), slice(None)))
    assert torch.allclose(a, b, atol=1e-6) and torch.allclose(node_a, node_b, atol=1e-6)


def test_format_1_checkpoints_load_with_one_way_message_passing(tmp_path) -> None:
    """Files written before reverse edges: encoder config without ``reverse_edges``, VG2VG heads without encoder."""
    enc = GraphEncoderConfig(kind="gat", reverse_edges=False)
    model = GraphMatcher(enc, training_gmn_config(GMNConfig(), False), 32, 32, seed=4)
    head = GraphMatcher(enc, training_gmn_config(GMNConfig(), True), 32, 32, seed=5).gmn
    old = {"format": "rsretrieval-graph-matcher@1", "embeddings": "trained",
           "encoder_config": {k: v for k, v in enc.model_dump().items() if k != "reverse_edges"},
           "gmn_config": model.gmn_cfg.model_dump(), "node_dim": 32, "edge_dim": 32,
           "encoder": model.encoder.state_dict(), "gmn_g2g": model.gmn.state_dict(),
           "vg2vg": {"rs-tiny": {"gmn_config": head.cfg.model_dump(), "state": head.state_dict()}}, "meta": {}}
    torch.save(old, tmp_path / "old.pt")
    state = load_matcher_file(tmp_path / "old.pt")
    back, vg = matcher_from_state(state), matcher_from_state(state, "rs-tiny")
    assert not back.encoder_cfg.reverse_edges
    pairs = synthetic_pairs(6, seed=7)
    with torch.no_grad():
        assert torch.equal(back.encode(pairs.docs).vectors, model.encode(pairs.docs).vectors)
        assert torch.equal(vg.encode(pairs.docs).vectors, model.encode(pairs.docs).vectors)  # the G2G encoder


@pytest.mark.parametrize("reverse_edges", [True, False])
def test_object_embedding_hears_its_attributes_only_with_reverse_edges(data: TrainData, reverse_edges: bool) -> None:
    """Edges point object -> attribute: a trained encoder must still let the object take in its attribute
    (the count / colour of "eleven white tanks"), which needs messages against the edge direction."""
    enc = GraphEncoderConfig(kind="gat", reverse_edges=reverse_edges)
    state = train_graph_matcher(data, GraphTrainingConfig(epochs=2, batch_size=32, patience=5), enc,
                                training_gmn_config(GMNConfig(), False), MemoryReporter())
    model = GraphMatcher(enc, training_gmn_config(GMNConfig(), False), 32, 32)
    model.load_state_dict(state["best_model"])
    from rsretrieval.graphs.tensors import GraphBatch
    from rsretrieval.matching.late_interaction import PackedVectors

    g = torch.Generator().manual_seed(0)
    obj, colour_a, colour_b, label = (v / v.norm() for v in torch.randn(4, 32, generator=g))

    def object_row(colour: torch.Tensor) -> torch.Tensor:  # node 0 = object, node 1 = its attribute value
        batch = GraphBatch(PackedVectors(torch.stack([obj, colour]), torch.tensor([0, 2])), torch.tensor([[0], [1]]),
                           label[None], torch.tensor([0, 1]))
        with torch.no_grad():
            return model.encode(batch).vectors[0]

    moved = float((object_row(colour_a) - object_row(colour_b)).norm())
    print(f"reverse_edges={reverse_edges}: object embedding moved by {moved:.4f} (unit vectors) when only its colour changed")
    if reverse_edges:
        assert moved > 1e-3, moved
    else:  # the defect this option fixes: the object never hears its attribute
        assert moved == 0.0


def test_lr_auto_trains_with_the_range_tests_rate(data: TrainData) -> None:
    from rsretrieval.training.graph_loop import find_lr

    enc = GraphEncoderConfig(kind="vanilla")
    gmn = training_gmn_config(GMNConfig(), False)
    cfg = GraphTrainingConfig(epochs=1, batch_size=32, lr="auto")
    found = find_lr(data, cfg, enc, gmn).steepest_lr
    rep = MemoryReporter()
    state = train_graph_matcher(data, cfg, enc, gmn, rep)
    assert state["lr"] == pytest.approx(found) and found != GraphTrainingConfig().lr
    resumed = train_graph_matcher(data, cfg.model_copy(update={"epochs": 2}), enc, gmn, MemoryReporter(rep.state))
    assert resumed["lr"] == state["lr"]  # a resumed run keeps the rate it found
