"""Shared fixtures: one cache for the whole session so synthrs and rs-tiny are built once."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

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
