"""Configuration, dataset, backbone and checkpoint errors: one message, exit status 2, no traceback
(``--debug`` shows it), raised before Ray starts; relative output paths of a submitted job."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "rayjobs" / "full_benchmark.py"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120,
                          cwd=REPO, env={**os.environ, "RAY_ADDRESS": "", **(env or {})})


@pytest.mark.parametrize("args, expected", [
    (["--set", "datasets.0.format=karpathy", "--set", "datasets.0.annotations=nowhere/dataset.json",
      "--set", "datasets.0.image_root=nowhere/images"], "nowhere/dataset.json"),
    (["--set", "backbones.0.name=NoSuchCLIP"], "Unknown backbone 'NoSuchCLIP'"),
    (["--set", "backbones.0.name=RemoteCLIP-ViT-B-32", "--set", "backbones.0.checkpoint=/nope/RemoteCLIP.pt"],
     "/nope/RemoteCLIP.pt"),
    (["--set", "graph_matching.gmn_checkpoint=/nope/gmn.pt"], "graph_matching.gmn_checkpoint: no file at /nope/gmn.pt"),
    (["--set", "modes=[v2x]"], "invalid config:\n  modes.0:"),
    (["--config", "nowhere.yaml"], "config nowhere.yaml"),
    (["--set", "no_equals_sign"], "must look like key.path=value"),
])
def test_user_errors_exit_2_with_one_message_before_ray(args: list[str], expected: str, tmp_path: Path) -> None:
    proc = _run(*args, "--output-dir", str(tmp_path))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("error: ") and expected in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "Started a local Ray instance" not in proc.stdout + proc.stderr  # failed before Ray
    assert not (tmp_path / "embedded").exists()  # and before the run folder


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    proc = _run("--set", "backbones.0.name=NoSuchCLIP", "--output-dir", str(tmp_path), "--debug")
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "UnknownBackboneError" in proc.stderr


def test_relative_outputs_of_a_submitted_job_go_under_rsr_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rsretrieval.config import RAY_JOB_ENV, BenchmarkConfig, load_config

    monkeypatch.chdir(tmp_path)
    assert BenchmarkConfig().output_dir == tmp_path / "runs"  # a plain run: the working directory, made absolute
    monkeypatch.setenv(RAY_JOB_ENV, "{}")  # what Ray's job supervisor sets in a submitted job's driver
    monkeypatch.setenv("RSR_HOME", str(tmp_path / "home"))
    cfg = load_config(None, ["output_dir=out", "cache_dir=cache", "generation.store_dir=store",
                             "graph_matching.train.storage_path=train"])
    assert cfg.output_dir == tmp_path / "home" / "out" and cfg.cache_dir == tmp_path / "home" / "cache"
    assert cfg.generation.store_dir == tmp_path / "home" / "store"
    assert cfg.graph_matching.train.storage_path == str(tmp_path / "home" / "train")
    assert load_config(None, ["output_dir=/abs/runs"]).output_dir == Path("/abs/runs")  # absolute: as given
    uri = load_config(None, ["graph_matching.train.storage_path=s3://bucket/train"]).graph_matching.train.storage_path
    assert uri == "s3://bucket/train"


def test_a_relative_dataset_path_in_a_submitted_job_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rsretrieval.config import RAY_JOB_ENV, load_config
    from rsretrieval.data.errors import DatasetNotFoundError
    from rsretrieval.pipelines.runtime.preflight import preflight

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(RAY_JOB_ENV, "{}")
    cfg = load_config(None, ["datasets.0.format=karpathy", "datasets.0.annotations=data/dataset.json",
                             "datasets.0.image_root=data/images", f"output_dir={tmp_path}"])
    with pytest.raises(DatasetNotFoundError, match="ray job submit.*temporary copy of --working-dir"):
        preflight(cfg)


def test_an_unreachable_cluster_is_an_error_within_seconds(tmp_path: Path) -> None:
    import socket
    import time

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    proc = _run("--output-dir", str(tmp_path), env={"RAY_ADDRESS": f"127.0.0.1:{port}"})
    assert proc.returncode == 2 and f"Ray cluster 127.0.0.1:{port} ($RAY_ADDRESS) cannot be reached" in proc.stderr
    assert time.monotonic() - t0 < 60


def test_a_dead_last_started_head_is_not_waited_for() -> None:
    """`ray.init()` follows the address the last `ray start` wrote, even when that head has died; the
    benchmark says so and starts a local instance instead."""
    code = ("import logging, ray\n"
            "logging.basicConfig(level=logging.INFO)\n"
            "import rsretrieval.pipelines.runtime.ray_session as b\n"
            "from rsretrieval.config import RayConfig\n"
            "b._last_started_cluster = lambda: '127.0.0.1:1'\n"
            "b.init_ray(RayConfig(num_cpus=1))\n"
            "print('cpus', ray.cluster_resources()['CPU'])\n")
    import os

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, cwd=REPO,
                          env={**os.environ, "RAY_ADDRESS": ""})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "cpus 1.0" in proc.stdout
    assert "the cluster of the last `ray start` on this machine (127.0.0.1:1) is gone" in proc.stderr


@pytest.mark.parametrize("command", [["generate", "--task", "text_graph"], ["audit"], ["train"]])
def test_jobs_other_than_the_benchmark_refuse_object_storage(command: list[str], tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "rsretrieval.cli", *command, "--output-dir", "s3://bucket/runs",
                           "--set", f"cache_dir={tmp_path}"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "output_dir=s3://bucket/runs" in proc.stderr and "rsretrieval benchmark" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_benchmark_keeps_an_object_storage_output_dir(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "rsretrieval.cli", "benchmark", "--output-dir", "s3://bucket/runs",
                           "--print-config"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "output_dir: s3://bucket/runs" in proc.stdout  # not a local path 's3:/bucket/runs'
