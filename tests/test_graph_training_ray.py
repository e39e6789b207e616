"""Ray Train around the graph matcher: 2 gloo workers, resume after a killed worker, rerun of a finished run."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsretrieval.config import GMNConfig, GraphEncoderConfig, GraphTrainingConfig
from rsretrieval.training.graph_loop import TrainData
from rsretrieval.training.graph_model import training_gmn_config
from rsretrieval.training.synthetic_graphs import synthetic_pairs

pytest.importorskip("torch_geometric")
ENC = GraphEncoderConfig(kind="gat")
GMN = training_gmn_config(GMNConfig(), False)
CFG = GraphTrainingConfig(epochs=3, batch_size=32, workers=2, patience=5)


@pytest.fixture(scope="module")
def data() -> TrainData:
    return TrainData(synthetic_pairs(256, seed=1, captions_per_image=2), synthetic_pairs(60, seed=2))


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory, data: TrainData, ray_local):
    from rsretrieval.pipelines.stages.train_graphs import fit_graph_matcher

    storage = tmp_path_factory.mktemp("ray-train")
    return storage, fit_graph_matcher(data, CFG, ENC, GMN, "clean", storage)


def _checkpoints(run: Path) -> set[str]:
    return {p.name for p in run.glob("checkpoint_*")}


def test_two_workers_train_and_a_rerun_resumes_the_finished_run(clean_run, data: TrainData) -> None:
    from rsretrieval.pipelines.stages.train_graphs import fit_graph_matcher

    storage, res = clean_run
    assert [h["epoch"] for h in res.state["history"]] == [1, 2, 3]
    assert res.state["best_mr"] > 30  # chance mR over 60 images is ~9
    before = _checkpoints(res.run_path)
    assert before  # one per epoch, the last two kept
    again = fit_graph_matcher(data, CFG, ENC, GMN, "clean", storage)  # same name: restored, nothing re-trained
    assert again.state["history"] == res.state["history"]
    assert _checkpoints(again.run_path) == before


def test_killed_worker_resumes_from_last_checkpoint(clean_run, data: TrainData, tmp_path: Path) -> None:
    from rsretrieval.pipelines.stages.train_graphs import fit_graph_matcher

    _, clean = clean_run
    faulted = fit_graph_matcher(data, CFG, ENC, GMN, "faulted", tmp_path, fail_at_epoch=2)
    assert (tmp_path / "faulted.fault-injected").exists()  # the worker really died at epoch 2
    got = [round(h["val_mr"], 4) for h in faulted.state["history"]]
    assert got == [round(h["val_mr"], 4) for h in clean.state["history"]]  # seeded: same as the unfaulted run


def test_stages_of_one_run_train_in_order_and_a_killed_worker_resumes_the_current_stage(
        clean_run, data: TrainData, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Two matchers in one Ray Train run: the first like a run of its own; the worker dies in the second
    stage's epoch 2 and the restarted one keeps the first stage and resumes the second; a rerun trains nothing."""
    from rsretrieval.pipelines.stages.train_graphs import fit_graph_matchers
    from rsretrieval.training.graph_stages import Stage

    _, clean = clean_run
    vanilla = GraphEncoderConfig(kind="vanilla")
    stages = [Stage("gat", data, ENC, GMN, "G2G trained"), Stage("vanilla", data, vanilla, GMN, "G2G vanilla")]
    with caplog.at_level("INFO", logger="rsretrieval.pipelines.stages.train_graphs"):
        done, _, run_path = fit_graph_matchers(stages, CFG, "group", tmp_path)
    assert [round(h["val_mr"], 4) for h in done["gat"]["history"]] == \
        [round(h["val_mr"], 4) for h in clean.state["history"]]  # the same loop as a run of its own
    assert [h["epoch"] for h in done["vanilla"]["history"]] == [1, 2, 3]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("graph training")]
    assert [ln.split(":")[0] for ln in lines] == ["graph training 1/2 G2G trained", "graph training 2/2 G2G vanilla"]

    faulted, _, _ = fit_graph_matchers(stages, CFG, "group-faulted", tmp_path, fail_at_epoch=1, fail_at_stage=1)
    assert (tmp_path / "group-faulted.fault-injected").exists()  # the worker died in the second stage
    for key in ("gat", "vanilla"):  # the first stage kept, the second resumed: both as in the unfaulted run
        assert [round(h["val_mr"], 4) for h in faulted[key]["history"]] == \
            [round(h["val_mr"], 4) for h in done[key]["history"]]
    before = _checkpoints(run_path)
    again, _, _ = fit_graph_matchers(stages, CFG, "group", tmp_path)
    assert _checkpoints(run_path) == before  # a finished run is not repeated
    assert again["vanilla"]["history"] == done["vanilla"]["history"]
