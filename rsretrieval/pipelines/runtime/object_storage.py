"""A benchmark run whose ``output_dir`` or ``cache_dir`` is an object-storage URI (``s3://``, ``gs://``).

Stages read and write local POSIX paths, so the run works on local copies (:func:`~rsretrieval.config.base.local_folder`):

- cache_dir URI: a local mirror, pulled from the bucket before the run (only what is missing locally) and
  pushed after every step and at the end, also when the run fails: a rerun on a fresh machine reuses
  the bucket's cache, a killed run loses at most its current step;
- output_dir URI: the run folder is staged locally and uploaded at the end (a failed run too, with
  ``summary.json`` status ``failed``); the MLflow SQLite store ``mlflow.db`` is pulled before (onto a
  machine without one) and pushed after: runs from several machines accumulate in it when they take
  turns; two machines running at once: the last upload wins.
  MLflow artifacts go straight to ``<output_dir>/mlartifacts`` (see
  :mod:`~rsretrieval.pipelines.runtime.tracking`).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from rsretrieval._lazy import lazy_import
from rsretrieval.config import BenchmarkConfig
from rsretrieval.config.base import local_folder
from rsretrieval.storage import RemoteFolder, StorageError, TIMEOUT_ENV, is_uri, join_uri

log = logging.getLogger(__name__)

MLFLOW_DB = "mlflow.db"
PREFLIGHT_TIMEOUT_S = 10.0
__all__ = ["MLFLOW_DB", "RunStorage", "verify_storage"]


def storage_uris(cfg: BenchmarkConfig) -> list[tuple[str, str]]:
    """(setting, URI) of every object-storage folder of the config."""
    out = [("output_dir", cfg.output_dir), ("cache_dir", cfg.cache_dir)]
    tcfg = cfg.graph_matching.train
    out.append(("graph_matching.train.storage_path", tcfg.storage_path))
    return [(k, str(v)) for k, v in out if is_uri(v)]


def verify_storage(cfg: BenchmarkConfig) -> None:
    """Every URI folder's endpoint answers and its bucket exists (a few seconds at most: the timeout is
    ``$RSR_STORAGE_TIMEOUT``, default 10 s); raises :class:`~rsretrieval.storage.StorageError` naming the
    setting and the URI."""
    timeout = float(os.environ.get(TIMEOUT_ENV, 0) or PREFLIGHT_TIMEOUT_S)
    if cfg.mlflow.enabled and str(cfg.output_dir).startswith(("gs://", "gcs://")):
        lazy_import("google.cloud.storage")  # MLflow writes its artifacts to the bucket with Google's client
    for setting, uri in storage_uris(cfg):
        try:
            RemoteFolder(uri, timeout=timeout).check()
        except StorageError as exc:
            raise StorageError(f"{setting}: {exc}") from exc


class RunStorage:
    """The local copies of one run's URI folders and their synchronisation (no-op without URIs)."""

    def __init__(self, cfg: BenchmarkConfig) -> None:
        self.cfg = cfg
        self.cache = RemoteFolder(str(cfg.cache_dir)) if is_uri(cfg.cache_dir) else None
        self.cache_local = local_folder(cfg.cache_dir)
        self.outputs = RemoteFolder(str(cfg.output_dir)) if is_uri(cfg.output_dir) else None
        self.run = RemoteFolder(join_uri(str(cfg.output_dir), cfg.run_name)) if self.outputs else None

    @property
    def active(self) -> bool:
        return self.cache is not None or self.outputs is not None

    def local_config(self) -> BenchmarkConfig:
        """The config the stages run with: cache_dir is the local mirror (output_dir stays: its run_dir is local)."""
        return self.cfg.model_copy(update={"cache_dir": self.cache_local}) if self.cache else self.cfg

    def pull(self) -> None:
        """The bucket's cache into the mirror (what is missing) and the output folder's mlflow.db."""
        if self.cache:
            self.cache_local.mkdir(parents=True, exist_ok=True)
            stats = self.cache.pull(self.cache_local)
            log.info("cache %s: %d files pulled into %s, %d already there", self.cache.uri, stats.files,
                     self.cache_local, stats.skipped)
        if self.outputs and not (self.cfg.local_output_dir / MLFLOW_DB).exists():
            # only onto a machine that has none: a database an MLflow client may hold open is never replaced
            self.outputs.pull(self.cfg.local_output_dir, only=[MLFLOW_DB])

    def push_cache(self) -> None:
        """Upload the mirror's new cache files."""
        if self.cache:
            self.cache.push(self.cache_local)

    def push_outputs(self) -> None:
        """Upload the run folder and mlflow.db."""
        if self.outputs and self.run:
            self.run.push(self.cfg.run_dir)
            self.outputs.push(self.cfg.local_output_dir, only=[MLFLOW_DB])

    def finish(self, error: BaseException | None) -> None:
        """Push everything; a failed run's folder is uploaded with ``summary.json`` status ``failed``.
        A push that fails after a failed run is logged, not raised over the run's own error."""
        if not self.active:
            return
        if error is not None and self.outputs:
            summary = self.cfg.run_dir / "summary.json"
            if not summary.exists():
                self.cfg.run_dir.mkdir(parents=True, exist_ok=True)
                summary.write_text(json.dumps({"status": "failed", "error": f"{type(error).__name__}: {error}"},
                                              indent=2))
        try:
            self.push_cache()
            self.push_outputs()
        except StorageError:
            if error is None:
                raise
            log.exception("upload after the failed run failed too")
        if self.outputs:
            log.info("outputs uploaded to %s", self.cfg.run_location)

    def after_step(self, *_: Any) -> None:
        """After each data-producing step: push the cache, so a killed run loses little."""
        self.push_cache()


def staged(path: Path, cfg: BenchmarkConfig) -> str:
    """Where a file of the local run folder ends up (its URI when output_dir is a URI)."""
    if not is_uri(cfg.output_dir):
        return str(path)
    return join_uri(cfg.run_location, Path(path).resolve().relative_to(cfg.run_dir.resolve()).as_posix())
