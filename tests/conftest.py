"""Shared fixtures: one cache for the whole session so synthrs and rs-tiny are built once."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
QUICK_CONFIG = REPO / "rayjobs" / "configs" / "quick.yaml"

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow-marked tests get 60 minutes before pytest-timeout stops them (the default is pyproject's 20)."""
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(3600))


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


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (apt install chromium): "
                                    "HTML rendering check skipped")


def screenshot(html_file: Path, png: Path, width: int = 1280, height: int = 2400) -> Any:
    """Render an HTML file in headless Chromium; return the screenshot as a greyscale image."""
    from PIL import Image

    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={width},{height}", f"--screenshot={png}", Path(html_file).resolve().as_uri()],
                   check=True, timeout=120, capture_output=True)
    return Image.open(png).convert("L")


def looks_rendered(im: Any) -> bool:
    """A blank or failed page is (nearly) one colour; a rendered page has text, tables and pictures."""
    lo, hi = im.getextrema()
    return hi - lo > 100 and len(set(im.resize((64, 120)).getdata())) > 50


# the smallest whole benchmark (V2V on 88 synthrs images): the object-storage tests run it against a bucket
TINY_STORAGE_CONFIG = {
    "datasets": [{"name": "synthrs", "format": "synthrs", "synthrs": {"seed": 0, "n_train": 64, "n_val": 8, "n_test": 16}}],
    "backbones": [{"name": "rs-tiny", "rs_tiny": {"epochs": 1, "batch_size": 32, "crops": False,
                                                  "train_data": {"seed": 0, "n_train": 64, "n_val": 8, "n_test": 16}}}],
    "modes": ["v2v"], "embed": {"batch_size": 32, "concurrency": 1},
    "graph_matching": {"train": {"enabled": False}}, "report": {"enabled": False}, "eval": {"bootstrap_resamples": 50},
}


def tiny_ray_train_fit(storage_uri: str, run_name: str) -> set[str]:
    """One epoch of a GAT matcher on 64 synthetic pairs through Ray Train, its storage at ``storage_uri``
    (the object-storage tests give a bucket URI); returns the keys of the stages it finished."""
    from rsretrieval.config import GMNConfig, GraphEncoderConfig, GraphTrainingConfig
    from rsretrieval.pipelines.stages.train_graphs import fit_graph_matchers
    from rsretrieval.training.graph_loop import TrainData
    from rsretrieval.training.graph_model import training_gmn_config
    from rsretrieval.training.graph_stages import Stage
    from rsretrieval.training.synthetic_graphs import synthetic_pairs

    data = TrainData(synthetic_pairs(64, seed=1, captions_per_image=1), synthetic_pairs(16, seed=2))
    stage = Stage(key="fit", data=data, encoder=GraphEncoderConfig(kind="gat"),
                  gmn=training_gmn_config(GMNConfig(), False))
    cfg = GraphTrainingConfig(epochs=1, batch_size=32, workers=1, patience=5)
    done, _, _ = fit_graph_matchers([stage], cfg, run_name, storage_uri)
    return set(done)


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_server(cmd: list[str], ready: Callable[[], object], log_path: Path, name: str) -> Iterator[None]:
    """Run ``cmd`` (a server on 127.0.0.1) until the block ends; wait up to 30 s for ``ready()`` to stop raising
    OSError (the test fails naming ``name`` otherwise). Output goes to ``log_path``."""
    import time

    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while True:
            try:
                ready()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    proc.kill()
                    pytest.fail(f"{name} did not start (exit {proc.poll()}; log: {log_path})")
                time.sleep(0.2)
        try:
            yield
        finally:
            proc.terminate()
            proc.wait(timeout=10)
