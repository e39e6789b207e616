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
    from rsretrieval.pipelines.train_graphs import fit_graph_matcher

    storage = tmp_path_factory.mktemp("ray-train")
    return storage, fit_graph_matcher(data, CFG, ENC, GMN, "clean", storage)


def _checkpoints(run: Path) -> set[str]:
    return {p.name for p in run.glob("checkpoint_*")}


def test_two_workers_train_and_a_rerun_resumes_the_finished_run(clean_run, data: TrainData) -> None:
    from rsretrieval.pipelines.train_graphs import fit_graph_matcher

    storage, res = clean_run
    assert [h["epoch"] for h in res.state["history"]] == [1, 2, 3]
    assert res.state["best_mr"] > 30  # chance mR over 60 images is ~9
    before = _checkpoints(res.run_path)
    assert before  # one per epoch, the last two kept
    again = fit_graph_matcher(data, CFG, ENC, GMN, "clean", storage)  # same name: restored, nothing re-trained
    assert again.state["history"] == res.state["history"]
    assert _checkpoints(again.run_path) == before


def test_killed_worker_resumes_from_last_checkpoint(clean_run, data: TrainData, tmp_path: Path) -> None:
    from rsretrieval.pipelines.train_graphs import fit_graph_matcher

    _, clean = clean_run
    faulted = fit_graph_matcher(data, CFG, ENC, GMN, "faulted", tmp_path, fail_at_epoch=2)
    assert (tmp_path / "faulted.fault-injected").exists()  # the worker really died at epoch 2
    got = [round(h["val_mr"], 4) for h in faulted.state["history"]]
    assert got == [round(h["val_mr"], 4) for h in clean.state["history"]]  # seeded: same as the unfaulted run
