"""A real local Ray head (`ray start --head`) and `ray job submit` of the main job."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import QUICK_CONFIG, REPO


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory):
    import ray

    # `ray stop --force` below stops every Ray process of this user, so leave no in-process
    # instance behind that later tests would find dead (the `ray_local` fixture re-inits one)
    ray.shutdown()
    ray_bin = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    temp = tmp_path_factory.mktemp("rayhead")
    dash = _free_port()
    # token authentication stays on (Ray's default); the test's head and client share a fresh token
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env |= {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    start = [ray_bin, "start", "--head", "--port", str(_free_port()), "--dashboard-port", str(dash),
             "--dashboard-host", "127.0.0.1", "--num-cpus", "2", "--include-dashboard", "true",
             "--temp-dir", str(temp), "--disable-usage-stats"]
    subprocess.run(start, check=True, env=env, capture_output=True, timeout=180)
    yield ray_bin, f"http://127.0.0.1:{dash}", env
    subprocess.run([ray_bin, "stop", "--force"], env=env, capture_output=True, timeout=120)


def test_ray_job_submit_full_benchmark(ray_head, tmp_path: Path, session_cache: Path) -> None:
    import mlflow

    ray_bin, address, env = ray_head
    out = tmp_path / "runs"
    # as the README says: ship the checkout as the working dir, so it runs whether or not (or
    # where) rsretrieval is pip-installed on the cluster
    cmd = [ray_bin, "job", "submit", "--address", address, "--working-dir", str(REPO),
           "--runtime-env-json", f'{{"env_vars": {{"RSR_CACHE_DIR": "{session_cache}"}}}}',
           "--", sys.executable, "rayjobs/full_benchmark.py",
           "--config", str(QUICK_CONFIG), "--output-dir", str(out), "--run-name", "submitted"]
    # the head's job agent registers a few seconds after `ray start` returns; the submit is refused
    # ("No available agent") until then, so retry only that refusal
    deadline = time.monotonic() + 120
    while True:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=REPO)
        if "No available agent" not in proc.stderr or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)  # the CLI colours its status lines
    assert "succeeded" in log.lower(), log[-3000:]
    df = pd.read_csv(out / "submitted" / "results.csv")
    # 12 vector/scene cells + (g2g, vg2vg) x 2 variants x (simulated-vlm, oracle) x (Hungarian, GMN)
    # x (vanilla, trained) graph cells (the quick config trains the graph models in the job)
    assert len(df) == 12 + 32 and df["mR"].notna().all()
    assert set(df[df["mode"] == "vg2vg"]["graphs"]) == {"simulated-vlm", "oracle"}
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{out.resolve() / 'mlflow.db'}")
    exp = client.get_experiment_by_name("rsretrieval-benchmark")
    runs = client.search_runs([exp.experiment_id])
    assert [r.info.run_name for r in runs] == ["submitted"]
    assert runs[0].info.status == "FINISHED"
    assert runs[0].data.metrics["synthrs/original/rs-tiny/v2v/R_at_1"] == pytest.approx(df.loc[(df.variant == "original") & (df["mode"] == "v2v"), "R@1"].iloc[0])
