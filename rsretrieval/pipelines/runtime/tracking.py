"""MLflow wiring: SQLite store under the output folder unless MLFLOW_TRACKING_URI says otherwise."""

from __future__ import annotations

import logging
import os
import random
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from rsretrieval.config import BenchmarkConfig, check_tracking_uri, flatten
from rsretrieval.storage import is_uri, join_uri

log = logging.getLogger(__name__)

MAX_PARAMS_PER_BATCH = 100
MAX_PARAM_LENGTH = 6000
LOCKED_RETRIES = 8  # attempts after the first on "database is locked" (SQLite, many writers)
LOCKED_BACKOFF_S = 0.25  # first back-off; doubles per attempt, with full jitter


def tracking_uri(cfg: BenchmarkConfig) -> str:
    """Config value, else $MLFLOW_TRACKING_URI, else ``sqlite:///<output_dir>/mlflow.db`` (output_dir a URI:
    its local staging folder; the database is uploaded with the run)."""
    if cfg.mlflow.tracking_uri:
        return cfg.mlflow.tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return check_tracking_uri(os.environ["MLFLOW_TRACKING_URI"], "$MLFLOW_TRACKING_URI")
    out = cfg.local_output_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{out / 'mlflow.db'}"


def metric_key(*parts: str) -> str:
    """MLflow-safe metric name from parts (MLflow forbids '@')."""
    return "/".join(p.replace("@", "_at_") for p in parts)


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other stores and in-memory SQLite)."""
    if not uri.startswith("sqlite:///") or uri.split("?")[0] == "sqlite:///:memory:":
        return None
    return Path(uri[len("sqlite:///"):].split("?")[0])


def prepare_store(uri: str) -> None:
    """Create or upgrade a SQLite store once, holding a file lock. MLflow migrates the schema when a
    process first opens a database; 16 processes opening a new one at once race in those migrations
    ("table _alembic_tmp_latest_metrics already exists") and every one of them failed."""
    path = _sqlite_path(uri)
    if path is None:
        return
    import fcntl

    import mlflow

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        mlflow.MlflowClient(uri).search_experiments(max_results=1)  # opens (and migrates) the store


def _is_locked(exc: BaseException) -> bool:
    return "database is locked" in str(exc)


class Tracker:
    """A thin wrapper so the pipeline logs the same way whether MLflow is on or off.

    Every MLflow call is retried with jittered exponential back-off when SQLite says "database is
    locked" (concurrent writers: Ray workers, parallel runs); ``locked_retries`` counts the retries.
    """

    def __init__(self, run: Any | None) -> None:
        self.run = run
        self.locked_retries = 0

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        for attempt in range(LOCKED_RETRIES + 1):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if not _is_locked(exc) or attempt == LOCKED_RETRIES:
                    raise
                self.locked_retries += 1
                delay = random.uniform(0, LOCKED_BACKOFF_S * 2 ** attempt)
                log.warning("MLflow store locked (%s); retry %d in %.2f s", fn.__name__, attempt + 1, delay)
                time.sleep(delay)

    @property
    def run_id(self) -> str | None:
        return self.run.info.run_id if self.run else None

    def log_params(self, params: dict[str, Any]) -> None:
        if not self.run:
            return
        import mlflow

        items = [(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in params.items()]
        for i in range(0, len(items), MAX_PARAMS_PER_BATCH):
            self._call(mlflow.log_params, dict(items[i : i + MAX_PARAMS_PER_BATCH]))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self.run and metrics:
            import mlflow

            self._call(mlflow.log_metrics, metrics, step=step)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if not self.run:
            return
        import mlflow

        if Path(path).is_dir():
            self._call(mlflow.log_artifacts, str(path), artifact_path)
        else:
            self._call(mlflow.log_artifact, str(path), artifact_path)

    def set_tags(self, tags: dict[str, str]) -> None:
        if self.run:
            import mlflow

            self._call(mlflow.set_tags, tags)


@contextmanager
def mlflow_run(cfg: BenchmarkConfig) -> Iterator[Tracker]:
    """Start an MLflow run named ``cfg.run_name`` with the flattened config as params."""
    if not cfg.mlflow.enabled:
        yield Tracker(None)
        return
    import mlflow

    uri = tracking_uri(cfg)
    prepare_store(uri)
    with tracking_env_restored():
        mlflow.set_tracking_uri(uri)
        # MLflow's S3 artifact store (boto3) takes a custom endpoint from $MLFLOW_S3_ENDPOINT_URL only
        s3_endpoint = (is_uri(cfg.output_dir) and "MLFLOW_S3_ENDPOINT_URL" not in os.environ
                       and os.environ.get("AWS_ENDPOINT_URL"))
        if s3_endpoint:
            os.environ["MLFLOW_S3_ENDPOINT_URL"] = s3_endpoint
        try:
            yield from _run_in(mlflow, cfg, uri)
        finally:
            if s3_endpoint:
                os.environ.pop("MLFLOW_S3_ENDPOINT_URL", None)


@contextmanager
def tracking_env_restored() -> Iterator[None]:
    """Put ``$MLFLOW_TRACKING_URI`` back as it was when the block ends. ``mlflow.set_tracking_uri`` (ours, and
    Ray Tune's MLflow callback's) exports it, and :func:`tracking_uri` reads it: without this, the next run or
    sweep of the process would log into this one's store, and a Ray head started later would inherit it."""
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous


def _run_in(mlflow: Any, cfg: BenchmarkConfig, uri: str) -> Iterator[Tracker]:
    exp_id = _experiment_id(mlflow, cfg, uri)
    with mlflow.start_run(experiment_id=exp_id, run_name=cfg.run_name) as run:
        tracker = Tracker(run)
        tracker.log_params(flatten(cfg.model_dump(mode="json")))
        log.info("MLflow run %s at %s", run.info.run_id, uri)
        yield tracker


def _experiment_id(mlflow: Any, cfg: BenchmarkConfig, uri: str) -> str:
    """Id of the configured experiment, created on first use. Two runs starting together may both find it
    missing; the one whose create fails (it already exists) reads the other's."""
    exp = mlflow.get_experiment_by_name(cfg.mlflow.experiment)
    if exp is not None:
        return exp.experiment_id
    # with a database store MLflow would put artifacts under ./mlruns of whatever the cwd is
    artifacts = (Path(cfg.output_dir).resolve() / "mlartifacts").as_uri() if uri.startswith("sqlite") else None
    if uri.startswith("sqlite") and is_uri(cfg.output_dir):  # MLflow writes them to the bucket itself
        artifacts = join_uri(str(cfg.output_dir), "mlartifacts")
    try:
        return mlflow.create_experiment(cfg.mlflow.experiment, artifact_location=artifacts)
    except Exception:
        exp = mlflow.get_experiment_by_name(cfg.mlflow.experiment)
        if exp is None:
            raise
        return exp.experiment_id
