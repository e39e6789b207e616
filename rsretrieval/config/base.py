"""Base pieces of every config model: strict models, path expansion, the default cache folder."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict


def default_cache_dir() -> Path:
    """``$RSR_CACHE_DIR`` or ``~/.cache/rsretrieval``: trained embedded models, synthetic data, embeddings."""
    return Path(os.environ.get("RSR_CACHE_DIR", Path.home() / ".cache" / "rsretrieval"))


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


def expand_path(p: Path | str | None) -> str | None:
    """``~`` and ``$VARS`` expanded; a str so that JSON-mode validation (actors) accepts it too."""
    return None if p is None else os.path.expandvars(os.path.expanduser(str(p)))


# Set by Ray's job supervisor in the driver of every `ray job submit` job. Such a job runs in a
# temporary copy of --working-dir, deleted with the Ray session: no place for a run's outputs.
RAY_JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"


def submitted_job() -> bool:
    """True in the driver of a job started by ``ray job submit``."""
    return RAY_JOB_ENV in os.environ


def job_home() -> Path:
    """Where a submitted job's relative output paths go: ``$RSR_HOME``, else ``~/rsretrieval``."""
    return Path(expand_path(os.environ.get("RSR_HOME")) or Path.home() / "rsretrieval")


def output_location(p: Path | str | None) -> Path | str | None:
    """An output or cache folder: a URI (``s3://bucket/prefix``, ``gs://...``) kept as the str it is, else
    :func:`output_path` as a Path."""
    from rsretrieval.storage import is_uri

    if p is None:
        return None
    p = expand_path(p)
    return p if is_uri(p) else Path(output_path(p))


def local_folder(p: Path | str) -> Path:
    """Where a run works on the folder ``p``: the folder itself, or for a URI its local mirror
    (``$RSR_MIRROR_DIR`` or ``$RSR_HOME/mirror``, then ``<bucket>/<prefix>``)."""
    from rsretrieval.storage import is_uri, mirror_dir

    return mirror_dir(str(p), job_home() / "mirror") if is_uri(p) else Path(p)


def output_path(p: Path | str | None) -> str | None:
    """An output folder, expanded and made absolute: a relative one against the working directory, or,
    in a submitted Ray job, against :func:`job_home` (the job's working directory is temporary).
    URIs (``s3://...``) are left as they are."""
    p = expand_path(p)
    if p is None or "://" in p or os.path.isabs(p):
        return p
    return str((job_home() if submitted_job() else Path.cwd()) / p)
