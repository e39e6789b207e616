"""Issue 9, scenario 7: many concurrent MLflow writers on one SQLite store lose nothing and never fail
with "database is locked"; a file-store URI is refused with a message that says what to use instead."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import time
import traceback
from pathlib import Path
from typing import Any

import pytest

WRITERS = 16
STEPS = 50  # metric steps per writer (two metrics per step)
PARAMS = 20  # extra params per writer, besides the flattened config


def _writer(args: tuple[int, str]) -> dict[str, Any]:
    """One process: a benchmark-style MLflow run through the project's Tracker (spawned: imports inside)."""
    i, out = args
    try:
        from rsretrieval.config import BenchmarkConfig
        from rsretrieval.pipelines.runtime.tracking import mlflow_run

        cfg = BenchmarkConfig(run_name=f"writer-{i}", output_dir=Path(out),
                              mlflow={"tracking_uri": f"sqlite:///{out}/mlflow.db", "experiment": "concurrency"})
        with mlflow_run(cfg) as tracker:
            for step in range(STEPS):
                tracker.log_metrics({"loss": 1.0 / (step + 1), "writer": float(i)}, step=step)
            tracker.log_params({f"extra.{j}": j for j in range(PARAMS)})
        return {"run_id": tracker.run_id, "retries": tracker.locked_retries, "error": None}
    except Exception:
        return {"run_id": None, "retries": 0, "error": traceback.format_exc()[-2000:]}


@pytest.mark.slow
def test_sixteen_concurrent_writers_lose_no_metric(tmp_path: Path) -> None:
    import mlflow

    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(WRITERS) as pool:  # spawn: fresh interpreters, as Ray workers are
        results = pool.map(_writer, [(i, str(tmp_path)) for i in range(WRITERS)])
    wall = time.perf_counter() - t0
    errors = [r["error"] for r in results if r["error"]]
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    lost = 0
    for i, r in enumerate(results):
        if r["run_id"] is None:
            lost += 2 * STEPS
            continue
        run = client.get_run(r["run_id"])
        history = client.get_metric_history(r["run_id"], "loss")
        lost += 2 * STEPS - len(history) - len(client.get_metric_history(r["run_id"], "writer"))
        assert run.info.status == "FINISHED" and run.data.tags["mlflow.runName"] == f"writer-{i}"
        assert sorted(m.step for m in history) == list(range(STEPS))
        assert all(run.data.params[f"extra.{j}"] == str(j) for j in range(PARAMS))
    retries = sum(r["retries"] for r in results)
    print(f"\nMLflow SQLite concurrency: {WRITERS} writers x {2 * STEPS} metric points + {PARAMS} params, "
          f"lost {lost}, errors {len(errors)}, 'database is locked' retries {retries}, wall {wall:.1f} s")
    assert not errors, errors[0]
    assert lost == 0


def test_locked_database_is_retried_then_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    from rsretrieval.pipelines.runtime import tracking

    calls: list[dict[str, float]] = []

    def flaky(metrics: dict[str, float], step: int | None = None) -> None:
        calls.append(metrics)
        if len(calls) <= 2:  # what SQLAlchemy raises when SQLite's busy timeout runs out
            raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(mlflow, "log_metrics", flaky)
    monkeypatch.setattr(tracking, "LOCKED_BACKOFF_S", 0.001)
    tracker = tracking.Tracker(run=object())
    tracker.log_metrics({"a": 1.0})
    assert len(calls) == 3 and tracker.locked_retries == 2


def test_locked_database_gives_up_after_bounded_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    from rsretrieval.pipelines.runtime import tracking

    def locked(*args: Any, **kwargs: Any) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(mlflow, "set_tags", locked)
    monkeypatch.setattr(tracking, "LOCKED_BACKOFF_S", 0.001)
    tracker = tracking.Tracker(run=object())
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        tracker.set_tags({"a": "b"})
    assert tracker.locked_retries == tracking.LOCKED_RETRIES


def test_other_errors_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    from rsretrieval.pipelines.runtime import tracking

    def broken(*args: Any, **kwargs: Any) -> None:
        raise ValueError("bad metric name")

    monkeypatch.setattr(mlflow, "log_metrics", broken)
    tracker = tracking.Tracker(run=object())
    with pytest.raises(ValueError, match="bad metric"):
        tracker.log_metrics({"a": 1.0})
    assert tracker.locked_retries == 0


@pytest.mark.parametrize("uri", ["./mlruns", "mlruns", "/abs/mlruns", "file:///tmp/mlruns", "file:mlruns"])
def test_file_store_uri_is_refused_with_what_to_use(uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from rsretrieval.config import BenchmarkConfig, load_config

    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    with pytest.raises(ValueError, match=r"mlflow\.tracking_uri=.*file store.*sqlite:///.*http://"):
        BenchmarkConfig(mlflow={"tracking_uri": uri})
    with pytest.raises(ValueError, match="MLFLOW_ALLOW_FILE_STORE"):
        load_config(None, [f"mlflow.tracking_uri={uri}"])


def test_file_store_from_environment_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from rsretrieval.config import BenchmarkConfig
    from rsretrieval.pipelines.runtime.tracking import tracking_uri

    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(tmp_path / "mlruns"))
    with pytest.raises(ValueError, match=r"\$MLFLOW_TRACKING_URI=.*file store"):
        tracking_uri(BenchmarkConfig(output_dir=tmp_path))
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # the user's explicit opt-in is respected
    assert tracking_uri(BenchmarkConfig(output_dir=tmp_path)) == str(tmp_path / "mlruns")


@pytest.mark.parametrize("uri", ["sqlite:////tmp/x/mlflow.db", "http://localhost:5000", "https://mlflow.example",
                                 "postgresql://u@h/db", "databricks"])
def test_database_and_server_uris_are_accepted(uri: str) -> None:
    from rsretrieval.config import BenchmarkConfig

    assert BenchmarkConfig(mlflow={"tracking_uri": uri}).mlflow.tracking_uri == uri
