"""Shared fixtures: one cache for the whole session so synthrs and rs-tiny are built once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
QUICK_CONFIG = REPO / "rayjobs" / "configs" / "quick.yaml"

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache dir shared by the tests of one session (synthrs renders, rs-tiny weights, embeddings)."""
    return tmp_path_factory.mktemp("rsr-cache")


@pytest.fixture(scope="session")
def _ray_session_shutdown():
    import ray

    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def ray_local(_ray_session_shutdown):
    """A local Ray instance for in-process pipeline tests (2 CPUs, no dashboard).

    Started on first use and kept for the session; re-started if a test (the `ray start --head`
    one) shut it down.
    """
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False)
    return ray
