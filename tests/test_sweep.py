"""Ray Tune sweeps: YAML spaces checked up front; trials in MLflow; best config usable; resume."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from rsretrieval.config import load_config
from rsretrieval.training.search_space import load_space
from tests.conftest import QUICK_CONFIG, REPO


@pytest.mark.parametrize("name", ["gmn.yaml", "encoder.yaml"])
def test_shipped_spaces_load(name: str) -> None:
    space = load_space(REPO / "tune_spaces" / name)
    assert space.num_samples >= 8 and space.metric == "best_val_mr"
    if name == "gmn.yaml":  # the minimum: LR, histogram bins, heads, hidden size, temperature
        assert {"graph_matching.train.lr", "graph_matching.gmn.bins", "graph_matching.gmn.heads",
                "graph_matching.gmn.hidden", "graph_matching.train.temperature"} <= set(space.space)


@pytest.mark.parametrize("body, message", [
    ("space:\n  graph_matching.gmn.binz: {type: choice, values: [8]}\n", "graph_matching.gmn.binz"),
    ("space:\n  graph_matching.gmn.bins: {type: choice, values: [1]}\n", "graph_matching.gmn.bins=1"),
    ("space:\n  graph_matching.train.lr: {type: lognormal, low: 1, high: 2}\n", "needs 'type'"),
    ("space:\n  graph_matching.train.lr: {type: uniform, low: 0.1}\n", "uniform needs ['high']"),
    ("metric: x\n", "non-empty 'space:'"),
    ("scheduler: {type: hyperband}\nspace:\n  graph_matching.gmn.bins: {type: choice, values: [8]}\n", "scheduler must be"),
])
def test_bad_space_names_file_and_key(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(ValueError, match="bad.yaml") as err:
        load_space(path)
    assert message in str(err.value)


def test_sweep_logs_trials_saves_best_config_and_resumes(tmp_path: Path, session_cache: Path, ray_local) -> None:
    import mlflow

    from rayjobs.sweep import main

    args = ["--config", str(QUICK_CONFIG), "--output-dir", str(tmp_path), "--name", "t", "--num-samples", "4",
            "--set", f"cache_dir={session_cache}", "--set", "graph_matching.train.epochs=3",
            "--set", "graph_matching.train.limit_images=128"]
    import os

    before = os.environ.get("MLFLOW_TRACKING_URI")
    res = main(args)
    # Tune's MLflow callback exports the sweep's store; a leak would send the next sweep's runs there
    assert os.environ.get("MLFLOW_TRACKING_URI") == before
    trials = pd.read_csv(res.trials_csv)
    assert len(trials) == 4 and res.n_trials == 4 and not res.restored
    assert trials["best_val_mr"].max() == pytest.approx(res.best_metric)
    best = load_config(res.best_config)  # a complete benchmark config
    for key, value in res.best_values.items():
        cur = best.model_dump()
        for part in key.split("."):
            cur = cur[part]
        assert cur == pytest.approx(value)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["rsretrieval-benchmark-sweep"])
    assert len(runs) == 4 and runs["metrics.best_val_mr"].notna().all()
    assert {"params.graph_matching.gmn.bins", "params.graph_matching.train.lr"} <= set(runs.columns)

    iterations = trials["epochs_run"].sum()
    again = main(args)  # same name: restored, no finished trial runs again
    assert again.restored and again.n_trials == 4
    assert pd.read_csv(again.trials_csv)["epochs_run"].sum() == iterations
    assert len(mlflow.search_runs(experiment_names=["rsretrieval-benchmark-sweep"])) == 4


@pytest.mark.slow
def test_sweep_killed_mid_way_resumes_without_rerunning_finished_trials(tmp_path: Path, session_cache: Path) -> None:
    """SIGKILL the sweep driver after its first trial finished; the rerun restores it and runs the rest."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    args = [sys.executable, str(REPO / "rayjobs" / "sweep.py"), "--config", str(QUICK_CONFIG), "--output-dir",
            str(tmp_path), "--name", "k", "--num-samples", "3", "--max-concurrent", "1",
            "--set", f"cache_dir={session_cache}", "--set", "graph_matching.train.epochs=3",
            "--set", "graph_matching.train.limit_images=128", "--set", "ray.num_cpus=2"]
    sweep = tmp_path / "sweeps" / "k"

    def finished() -> dict[str, int]:  # trial dir -> reported results, for trials that are done
        out = {}
        for f in sweep.glob("*/result.json"):
            lines = [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
            if lines and lines[-1].get("done"):
                out[f.parent.name] = len(lines)
        return out

    env = {**os.environ, "RAY_ADDRESS": ""}  # its own local Ray, so that killing it kills the sweep
    proc = subprocess.Popen(args, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 400
    while not finished() and time.time() < deadline and proc.poll() is None:
        time.sleep(1)
    done_before = finished()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert done_before, "no trial finished before the deadline"
    assert len(done_before) < 3, "the sweep finished before it could be interrupted"
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "(resumed)" in out.stdout
    after = finished()
    assert len(after) == 3
    for trial, n in done_before.items():
        assert after[trial] == n  # a finished trial reported nothing more: it was not re-run
