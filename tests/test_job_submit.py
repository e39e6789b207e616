"""The README's cluster commands, copied from the README and run as written: a real `ray start --head`
on Ray's defaults (token authentication included), `ray job submit` of the main job, `ray stop`; then
the outputs must be where the job said, after the Ray session is gone."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO

README = REPO / "README.md"


def readme_cluster_commands() -> list[str]:
    """The shell lines of the first ```bash block under "## Running on Ray", comments stripped."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Running on Ray"):]
    block = section[section.index("```bash") + len("```bash"):]
    block = block[: block.index("```")]
    lines = [re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _run_to_files(script: str, env: dict[str, str], folder: Path, timeout_s: float) -> tuple[int | None, str, str]:
    """Run ``script`` in bash with its output in files, not pipes: the Ray daemons that ``ray start`` leaves
    behind inherit the output, so reading a pipe to its end would wait for them. Returns (exit code, or None
    when the script ran past ``timeout_s`` and was killed with its process group; stdout; stderr)."""
    out_file, err_file = folder / "commands.out", folder / "commands.err"
    with out_file.open("w") as out, err_file.open("w") as err:
        proc = subprocess.Popen(["bash", "-c", script], cwd=REPO, env=env, stdout=out, stderr=err,
                                start_new_session=True)
        try:
            returncode: int | None = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            returncode = None
    return returncode, out_file.read_text(errors="replace"), err_file.read_text(errors="replace")


def test_readme_block_is_the_documented_sequence() -> None:
    lines = readme_cluster_commands()
    assert lines[0] == "ray get-auth-token --generate" and lines[1] == "export RAY_AUTH_MODE=token"
    assert lines[2] == "ray start --head" and lines[-1] == "ray stop"
    assert lines[3].startswith("ray job submit --address http://127.0.0.1:8265 --working-dir . -- python rayjobs/")


def test_readme_ray_job_submit_keeps_its_outputs(tmp_path: Path, session_cache: Path) -> None:
    import mlflow
    import ray

    if not (_port_free(8265) and _port_free(6379)):
        pytest.skip("Ray's default ports 6379 / 8265 are taken on this machine: the README's commands need them")
    ray.shutdown()  # `ray stop` below stops every Ray process of this user: leave no in-process instance behind
    bin_dir = str(Path(sys.executable).parent)
    home = tmp_path / "home"
    home.mkdir()
    # a fresh user: no token yet, Ray's defaults; the cache is shared with the other tests only for speed
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_", "RSR_"))}
    import site

    env |= {"HOME": str(home), "PATH": bin_dir + os.pathsep + env.get("PATH", ""), "RAY_USAGE_STATS_ENABLED": "0",
            "RSR_CACHE_DIR": str(session_cache),
            "PYTHONUSERBASE": site.getuserbase()}  # a `pip install --user` stays importable under the new HOME
    script = "set -e\n" + "\n".join(readme_cluster_commands()) + "\n"
    started = time.monotonic()
    ray_cli = shutil.which("ray", path=env["PATH"]) or "ray"
    try:
        returncode, stdout, stderr = _run_to_files(script, env, tmp_path, timeout_s=900)
        if returncode is None:  # say what the cluster was doing before `ray stop` below removes it
            status = subprocess.run([ray_cli, "status"], env=env, capture_output=True, text=True, timeout=60)
            pytest.fail(f"the README's commands did not finish in 900 s\n--- ray status:\n{status.stdout[-2000:]}"
                        f"\n--- stdout (tail):\n{stdout[-6000:]}\n--- stderr (tail):\n{stderr[-3000:]}")
    finally:
        subprocess.run([ray_cli, "stop", "--force"], env=env, capture_output=True, timeout=120)
    log = re.sub(r"\x1b\[[0-9;]*m", "", stdout + stderr)  # the CLI colours its status lines
    assert returncode == 0, log[-4000:]
    assert "succeeded" in log.lower(), log[-3000:]
    # the job said where its outputs go, as an absolute path under ~/rsretrieval (the job's working
    # directory is a temporary copy that `ray stop` deletes)
    said = re.search(r"^outputs: (\S+)", log, re.M)
    assert said, log[-3000:]
    run_dir = Path(said.group(1))
    assert run_dir == home / "rsretrieval" / "runs" / "quick"
    assert (run_dir / "report.html").stat().st_size > 0
    assert re.search(rf"^results: {re.escape(str(run_dir / 'results.csv'))}$", log, re.M)
    assert f"mlflow ui --backend-store-uri sqlite:///{run_dir.parent / 'mlflow.db'}" in log
    # a console a person can follow: our stage lines and a summary; the libraries' chatter is in run.log
    out = re.sub(r"\x1b\[[0-9;]*m", "", stdout)
    job = out[out.index("Running entrypoint for job"):]
    job_lines = job[: job.index("SUCC cli.py")].splitlines()[1:-1]  # the job's own output, not the CLI's
    assert len(job_lines) <= 80, "\n".join(job_lines)
    for noise in ("Failed to query Ray Train Controller", "No pretrained weights loaded", "streaming_executor",
                  "Creating initial MLflow database tables", "RayTrainWorker"):
        assert noise not in log, noise
    assert "Best cell per mode" in log and "findings" in log.lower()
    run_log = (run_dir / "run.log").read_text(encoding="utf-8")
    assert "INFO ray" in run_log and "INFO rsretrieval" in run_log
    df = pd.read_csv(run_dir / "results.csv")
    # 12 vector/scene cells + (g2g, vg2vg) x 2 variants x (simulated-vlm, oracle) x (Hungarian, GMN)
    # x (vanilla, trained) graph cells (the quick config trains the graph models in the job)
    assert len(df) == 12 + 32 and df["mR"].notna().all()
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{run_dir.parent / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("rsretrieval-benchmark").experiment_id])
    assert [r.info.run_name for r in runs] == ["quick"] and runs[0].info.status == "FINISHED"
    assert runs[0].data.metrics["synthrs/original/rs-tiny/v2v/R_at_1"] == pytest.approx(
        df.loc[(df.variant == "original") & (df["mode"] == "v2v"), "R@1"].iloc[0])
    print(f"README cluster commands: {time.monotonic() - started:.0f} s; outputs in {run_dir}")
