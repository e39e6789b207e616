"""MLflow wiring: SQLite store under the output folder unless MLFLOW_TRACKING_URI says otherwise."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from rsretrieval.config import BenchmarkConfig, flatten

log = logging.getLogger(__name__)

MAX_PARAMS_PER_BATCH = 100
MAX_PARAM_LENGTH = 6000


def tracking_uri(cfg: BenchmarkConfig) -> str:
    """Config value, else $MLFLOW_TRACKING_URI, else ``sqlite:///<output_dir>/mlflow.db``."""
    if cfg.mlflow.tracking_uri:
        return cfg.mlflow.tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    out = Path(cfg.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{out / 'mlflow.db'}"


def metric_key(*parts: str) -> str:
    """MLflow-safe metric name from parts (MLflow forbids '@')."""
    return "/".join(p.replace("@", "_at_") for p in parts)


class Tracker:
    """A thin wrapper so the pipeline logs the same way whether MLflow is on or off."""

    def __init__(self, run: Any | None) -> None:
        self.run = run

    @property
    def run_id(self) -> str | None:
        return self.run.info.run_id if self.run else None

    def log_params(self, params: dict[str, Any]) -> None:
        if not self.run:
            return
        import mlflow

        items = [(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in params.items()]
        for i in range(0, len(items), MAX_PARAMS_PER_BATCH):
            mlflow.log_params(dict(items[i : i + MAX_PARAMS_PER_BATCH]))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self.run and metrics:
            import mlflow

            mlflow.log_metrics(metrics, step=step)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if not self.run:
            return
        import mlflow

        if Path(path).is_dir():
            mlflow.log_artifacts(str(path), artifact_path)
        else:
            mlflow.log_artifact(str(path), artifact_path)

    def set_tags(self, tags: dict[str, str]) -> None:
        if self.run:
            import mlflow

            mlflow.set_tags(tags)


@contextmanager
def mlflow_run(cfg: BenchmarkConfig) -> Iterator[Tracker]:
    """Start an MLflow run named ``cfg.run_name`` with the flattened config as params."""
    if not cfg.mlflow.enabled:
        yield Tracker(None)
        return
    import mlflow

    uri = tracking_uri(cfg)
    # set_tracking_uri also exports $MLFLOW_TRACKING_URI; put that back afterwards so this run's
    # store does not leak into child processes (a Ray head started later would inherit it)
    previous_env = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield from _run_in(mlflow, cfg, uri)
    finally:
        if previous_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous_env


def _run_in(mlflow: Any, cfg: BenchmarkConfig, uri: str) -> Iterator[Tracker]:
    exp = mlflow.get_experiment_by_name(cfg.mlflow.experiment)
    if exp is None:
        # with a database store MLflow would put artifacts under ./mlruns of whatever the cwd is
        artifacts = (Path(cfg.output_dir).resolve() / "mlartifacts").as_uri() if uri.startswith("sqlite") else None
        exp_id = mlflow.create_experiment(cfg.mlflow.experiment, artifact_location=artifacts)
    else:
        exp_id = exp.experiment_id
    with mlflow.start_run(experiment_id=exp_id, run_name=cfg.run_name) as run:
        tracker = Tracker(run)
        tracker.log_params(flatten(cfg.model_dump(mode="json")))
        log.info("MLflow run %s at %s", run.info.run_id, uri)
        yield tracker
