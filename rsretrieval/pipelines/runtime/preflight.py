"""Checks of a benchmark config that need no Ray and no model: run before the cluster starts, so that a
wrong dataset path, backbone name or checkpoint fails in seconds with one message, not after minutes
of work at the end of a traceback.

:data:`USER_ERRORS` are the exceptions a user fixes in the config or on disk; the CLI prints their
message and exits 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from pydantic import ValidationError

from rsretrieval._lazy import MissingDependencyError
from rsretrieval.config import BenchmarkConfig, DatasetConfig, submitted_job
from rsretrieval.data.errors import DatasetError, DatasetNotFoundError
from rsretrieval.encoders.registry import CheckpointNotFoundError, UnknownBackboneError
from rsretrieval.pipelines.runtime.object_storage import verify_storage
from rsretrieval.storage import StorageError


class ConfigError(ValueError):
    """A config value that cannot work (the message names the setting)."""


USER_ERRORS: tuple[type[BaseException], ...] = (ConfigError, ValidationError, DatasetError, CheckpointNotFoundError,
                                               UnknownBackboneError, MissingDependencyError, StorageError)

JOB_HINT = (" This is a `ray job submit` job: Ray runs it in a temporary copy of --working-dir, so a relative "
            "path is read from that copy. Give an absolute path that the cluster's nodes can read.")


def verify_dataset_paths(d: DatasetConfig) -> None:
    """The dataset's files exist (its format's own ``_verify``, whose message says what to do)."""
    if d.format == "synthrs":
        return
    from rsretrieval.data.registry import required_path

    annotations = required_path(d, "annotations")
    image_root = d.image_root if d.format in ("webdataset", "metadata") else required_path(d, "image_root")
    try:
        if d.format == "webdataset":  # images come from the shards (extracted under cache_dir)
            from rsretrieval.data.webdataset import find_shards

            find_shards(annotations)
        elif d.format == "metadata":  # image_root is optional (default: each table's folder)
            from rsretrieval.data.metadata_table import find_tables

            find_tables(annotations, image_root)
        elif d.format == "fit_rs":  # also the test, split and scene-graph files of its options
            from rsretrieval.data.fit_rs import verify_files as verify_fit_rs

            verify_fit_rs(annotations, image_root, d.fit_rs)
        else:
            verify = importlib.import_module(f"rsretrieval.data.{d.format}")._verify
            verify(annotations, image_root, d.name) if d.format == "harma" else verify(annotations, image_root)
    except DatasetNotFoundError as e:
        if submitted_job() and not all(Path(p).is_absolute() for p in (annotations, image_root) if p is not None):
            raise DatasetNotFoundError(f"dataset '{d.name}'", e.path, str(e) + JOB_HINT) from e
        raise


def verify_backbones(cfg: BenchmarkConfig) -> None:
    """Every backbone is registered and, except the embedded rs-tiny (trained on first use), has its
    checkpoint where the config says."""
    from rsretrieval.pipelines.runtime.checkpoints import resolve_checkpoint

    for b in cfg.backbones:
        if b.name != "rs-tiny":
            resolve_checkpoint(b, cfg)


def verify_graph_checkpoint(cfg: BenchmarkConfig) -> None:
    ckpt = cfg.graph_matching.gmn_checkpoint
    if ckpt is not None and not Path(ckpt).is_file():
        raise ConfigError(f"graph_matching.gmn_checkpoint: no file at {ckpt} (a run's graph_models/*.pt)"
                          + (JOB_HINT if submitted_job() and not Path(ckpt).is_absolute() else ""))


def preflight(cfg: BenchmarkConfig) -> None:
    """Everything that can be checked before Ray starts; raises one of :data:`USER_ERRORS`."""
    verify_storage(cfg)  # object-storage folders: endpoint reachable, bucket there
    for d in cfg.datasets:
        verify_dataset_paths(d)
    verify_backbones(cfg)
    verify_graph_checkpoint(cfg)
