"""Object storage (s3:// output_dir and cache_dir) against a local S3-compatible server (moto's server mode)."""

from __future__ import annotations

import shutil
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from rsretrieval.config import load_config
from tests.conftest import TINY_STORAGE_CONFIG as TINY, free_port, local_server, tiny_ray_train_fit

pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server on a free port of 127.0.0.1, for the module's tests."""
    port = free_port()
    with local_server([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                      lambda: socket.create_connection(("127.0.0.1", port), timeout=0.5).close(),
                      tmp_path_factory.mktemp("moto") / "moto.log", "moto server"):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A fresh bucket; AWS credentials and endpoint in the environment, the standard way."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": moto_endpoint,
                       "RSR_MIRROR_DIR": str(tmp_path / "mirror")}.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_REGION", "MLFLOW_S3_ENDPOINT_URL", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(key, raising=False)
    name = f"rsr-{uuid.uuid4().hex[:10]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


def _keys(bucket: str, prefix: str = "") -> dict[str, int]:
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"]: o["Size"] for p in pages for o in p.get("Contents", [])}


def _tree(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    (root / "top.txt").write_text("top")
    (root / "a" / "one.bin").write_bytes(b"\x00" * 1000)
    (root / "a" / "b" / "deep.json").write_text('{"x": 1}')
    (root / "a" / "b" / "_SUCCESS").write_text("{}")
    (root / "a" / "half.tmp-1234").mkdir()
    (root / "a" / "half.tmp-1234" / "part.parquet").write_text("partial")
    (root / "mlflow.db.lock").write_text("")


def test_uri_config_keeps_uri_and_local_paths_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RSR_MIRROR_DIR", str(tmp_path / "m"))
    cfg = load_config(None, ["output_dir=s3://bkt/runs", "cache_dir=gs://other/cache/", "run_name=r1"])
    assert cfg.output_dir == "s3://bkt/runs" and cfg.cache_dir == "gs://other/cache/"
    assert cfg.run_dir == tmp_path / "m" / "bkt" / "runs" / "r1"
    assert cfg.run_location == "s3://bkt/runs/r1"
    assert load_config(None, [f"output_dir={tmp_path}"]).output_dir == tmp_path  # a Path, as before
    local = load_config(None, [f"output_dir={tmp_path}", "run_name=x"])
    assert local.run_dir == tmp_path / "x" and local.run_location == str(tmp_path / "x")
    again = load_config(None, [f"{k}={v}" for k, v in cfg.model_dump(mode="json").items() if k.endswith("_dir")])
    assert again.output_dir == "s3://bkt/runs"  # the URI survives a dump and reload


def test_push_pull_skip_unchanged_nested(bucket: str, tmp_path: Path) -> None:
    from rsretrieval.storage import RemoteFolder

    src, dest = tmp_path / "src", tmp_path / "dest"
    _tree(src)
    remote = RemoteFolder(f"s3://{bucket}/cache")
    first = remote.push(src)
    assert first.files == 4
    assert _keys(bucket) == {"cache/top.txt": 3, "cache/a/one.bin": 1000, "cache/a/b/deep.json": 8,
                             "cache/a/b/_SUCCESS": 2}  # no temporary folder, no lock file
    assert remote.push(src).files == 0  # unchanged: skipped
    (src / "a" / "b" / "new.txt").write_text("new")
    time.sleep(0.01)
    (src / "top.txt").write_text("TOP")  # same size, changed since the last push
    assert remote.push(src).files == 2
    fresh = RemoteFolder(f"s3://{bucket}/cache")
    got = fresh.pull(dest)
    assert got.files == 5
    assert (dest / "top.txt").read_text() == "TOP" and (dest / "a" / "b" / "deep.json").read_text() == '{"x": 1}'
    assert not (dest / "a" / "half.tmp-1234").exists()
    again = fresh.pull(dest)
    assert again.files == 0 and again.skipped == 5
    assert RemoteFolder(f"s3://{bucket}/empty").pull(tmp_path / "none").files == 0  # a new prefix is empty


def test_preflight_missing_bucket_names_the_uri(bucket: str, tmp_path: Path) -> None:
    from rsretrieval.pipelines.runtime.preflight import USER_ERRORS, preflight
    from rsretrieval.storage import StorageError

    cfg = load_config(None, [f"output_dir={tmp_path}", "cache_dir=s3://no-such-bucket-rsr/cache"])
    with pytest.raises(StorageError, match="cache_dir: s3://no-such-bucket-rsr/cache: bucket 'no-such-bucket-rsr' "
                       "does not exist") as err:
        preflight(cfg)
    assert isinstance(err.value, USER_ERRORS)


def test_preflight_unreachable_endpoint_is_fast(bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rsretrieval.pipelines.runtime.preflight import preflight
    from rsretrieval.storage import StorageError

    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    monkeypatch.setenv("RSR_STORAGE_TIMEOUT", "2")
    cfg = load_config(None, [f"output_dir=s3://{bucket}/runs", f"cache_dir={tmp_path}"])
    t0 = time.perf_counter()
    with pytest.raises(StorageError, match=f"output_dir: s3://{bucket}/runs: cannot reach the object store \\({dead}\\)"):
        preflight(cfg)
    assert time.perf_counter() - t0 < 20


def test_benchmark_on_s3_and_rerun_reuses_the_buckets_cache(bucket: str, tmp_path: Path, ray_local,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd

    import rsretrieval.encoders.rs_tiny as rs_tiny
    from rsretrieval.pipelines.benchmark.run import run_benchmark

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    overrides = [f"output_dir=s3://{bucket}/runs", f"cache_dir=s3://{bucket}/cache", "run_name=first"]
    first = run_benchmark(load_config(path, overrides))
    keys = _keys(bucket)
    for name in ("results.csv", "findings.csv", "summary.json", "config.yaml"):
        assert f"runs/first/{name}" in keys, sorted(keys)
    assert "runs/mlflow.db" in keys
    assert any(k.startswith("runs/mlartifacts/") and k.endswith("/results.csv") for k in keys)  # MLflow -> s3
    assert any(k.startswith("cache/embeddings/") and k.endswith("/_SUCCESS") for k in keys)
    assert any(k.startswith("cache/backbones/") and k.endswith(".pt") for k in keys)  # the trained rs-tiny
    assert yaml.safe_load((first.run_dir / "config.yaml").read_text())["cache_dir"] == f"s3://{bucket}/cache"

    shutil.rmtree(tmp_path / "mirror" / bucket / "cache")  # a fresh cache mirror: the bucket has the cache

    def no_training(*args, **kwargs):
        raise AssertionError("rs-tiny retrained: its checkpoint should come from the bucket")

    monkeypatch.setattr(rs_tiny, "train_rs_tiny", no_training)
    second = run_benchmark(load_config(path, overrides[:-1] + ["run_name=second"]))
    local = pd.read_csv(second.results_csv)
    assert local["embeddings_cached"].all()
    assert "runs/second/results.csv" in _keys(bucket, "runs/second/")
    assert sorted(_keys(bucket, "runs/first/")) == sorted(k for k in keys if k.startswith("runs/first/"))


def test_failed_run_is_uploaded_with_its_status(bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    import json

    import rsretrieval.pipelines.benchmark.run as run
    from rsretrieval.cli.benchmark import announce_outputs

    def boom(*args, **kwargs):
        raise RuntimeError("killed mid-run")

    monkeypatch.setattr(run, "execute", boom)
    cfg = load_config(None, [f"output_dir=s3://{bucket}/runs", f"cache_dir={tmp_path / 'cache'}", "run_name=broken"])
    announce_outputs(cfg)
    assert capsys.readouterr().out.strip() == f"outputs: s3://{bucket}/runs/broken"
    with pytest.raises(RuntimeError, match="killed mid-run"):
        run.run_benchmark(cfg)
    keys = _keys(bucket)
    assert {"runs/broken/summary.json", "runs/broken/config.yaml", "runs/mlflow.db"} <= set(keys)
    body = boto3.client("s3").get_object(Bucket=bucket, Key="runs/broken/summary.json")["Body"].read()
    assert json.loads(body) == {"status": "failed", "error": "RuntimeError: killed mid-run"}


def test_ray_train_storage_path_on_s3(bucket: str, ray_local) -> None:
    """graph_matching.train.storage_path as an s3:// URI goes to Ray Train's RunConfig as is (a tiny fit).
    Ray's workers read AWS_* from the environment they were started with: this module sets it before Ray starts."""
    pytest.importorskip("torch_geometric")
    from rsretrieval.storage import delete_folder

    assert tiny_ray_train_fit(f"s3://{bucket}/ray_train", "s3run") == {"fit"}
    assert any(k.startswith("ray_train/s3run/") for k in _keys(bucket))  # Ray Train wrote to the bucket
    delete_folder(f"s3://{bucket}/ray_train/s3run")
    assert not _keys(bucket, "ray_train/s3run/")
