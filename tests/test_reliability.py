"""Issue 9's fault-injection scenarios for generation, with the real components: Ray (a multi-node
``ray.cluster_utils.Cluster`` where a node is lost), the real google-genai client and the fake
Gemini server. Each test prints its figures (run with ``-s`` to see them); the README section
"Failure behaviour" quotes them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rsretrieval.generation.store import ResponseStore


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")


def _show(name: str, figures: dict) -> None:
    print(f"\n[reliability] {name}: " + json.dumps(figures, default=str, sort_keys=True))


@pytest.mark.slow
def test_worker_node_lost_during_generation(tmp_path: Path) -> None:
    """(1) A worker node holding generation actors is removed mid-run: the run completes with one
    stored answer per input and almost no answer paid twice."""
    import ray

    from rsretrieval.benchmarks.faults import node_loss_phase

    ray.shutdown()  # the phase starts its own 3-node cluster; ray_local re-starts on next use
    fig = node_loss_phase(120, tmp_path / "store")
    _show("node loss", fig)
    assert fig["node_removed_after_answers"] is not None, "the node was never removed"
    assert fig["rows_lost"] == 0 and fig["ok"] == 120
    assert fig["inputs_stored"] == 120 and fig["stored_outputs_min"] == fig["stored_outputs_max"] == 1
    assert fig["paid_call_amplification"] <= 1.05


@pytest.mark.slow
def test_killed_job_resubmitted_pays_for_nothing_finished(tmp_path: Path) -> None:
    """(2) The whole job (driver, raylet, actors) SIGKILLed half way, then resubmitted."""
    from rsretrieval.benchmarks.generation import kill_phase

    fig = kill_phase(60, actors=2, store=tmp_path / "store")
    _show("killed driver", fig)
    assert fig["second_job_exit_code"] == 0 and fig["recorded_before_kill"] > 0
    assert fig["repeated_for_finished_inputs"] == 0
    assert fig["rows_done_after_resubmit"] == 60
    # only answers in flight at the kill (answered, not yet stored) may be paid twice
    assert fig["answered_twice_in_flight_at_kill"] <= 2 * 4  # actors x concurrency_per_actor


@pytest.mark.slow
def test_429_5xx_and_timeouts_lose_no_row_and_respect_retry_delay_and_quota(ray_local, tmp_path: Path) -> None:
    """(3) 30% of requests fail (429 with retryDelay, 5xx, timeouts) under a server-side quota equal
    to the job's requests/min."""
    from rsretrieval.benchmarks.faults import fault_mix_phase

    fig = fault_mix_phase(80, tmp_path / "store", rate=0.3, rpm=1200)
    _show("fault mix", fig)
    assert fig["rows_lost"] == 0
    assert fig["answered_429"] > 0 and fig["answered_5xx"] > 0 and fig["timed_out"] > 0
    assert fig["min_retry_gap_over_retry_delay"] >= 1.0
    assert fig["refused_for_quota"] == 0  # the job's pacer kept every actor under the quota


def test_poison_inputs_are_bounded_and_listed(ray_local, tmp_path: Path) -> None:
    """(4) One input always answered 5xx, one always malformed: bounded attempts, both in the error
    rows with their reason, every other row answered."""
    from rsretrieval.benchmarks.faults import poison_phase

    fig = poison_phase(12, tmp_path / "store", max_attempts=4, max_reasks=2)
    _show("poison", {k: v for k, v in fig.items() if k != "errors"})
    assert fig["ok"] == 10 and fig["failed"] == 2 and fig["failed_ids"] == ["row0", "row1"]
    assert fig["attempts_5xx_poison"] == 4 and fig["attempts_malformed_poison"] == 3
    assert fig["requests_other_rows"] == 10
    assert "500" in fig["errors"]["row0"] and "after 4 attempts" in fig["errors"]["row0"]
    assert "invalid answer" in fig["errors"]["row1"] and "after 2 re-asks" in fig["errors"]["row1"]
    # the failures are stored (paid, with their reason) and a rerun does not ask for them again
    failed = [r for r in ResponseStore(tmp_path / "store").records("text_scenes") if r.status == "failed"]
    assert sorted(r.input_id for r in failed) == ["row0", "row1"]
    # what a benchmark run makes of them: generated/<dataset>/<task>.parquet -> generation_errors.csv
    import pandas as pd
    import pyarrow.parquet as pq

    from rsretrieval.pipelines.benchmark.generation import ERRORS_FILE, write_generation_errors
    from rsretrieval.pipelines.stages.generation_tasks import outputs_table

    out = tmp_path / "run" / "generated" / "synthrs" / "text_scenes.parquet"
    out.parent.mkdir(parents=True)
    latest = ResponseStore(tmp_path / "store").latest("text_scenes").values()
    pq.write_table(outputs_table({r.input_id: r for r in latest}), out)
    assert write_generation_errors(tmp_path / "run") == 2
    table = pd.read_csv(tmp_path / "run" / ERRORS_FILE)
    assert sorted(table["input_id"]) == ["row0", "row1"] and set(table["task"]) == {"text_scenes"}
    assert table["error"].str.len().min() > 10  # the reason, not just "failed"


@pytest.mark.slow
def test_killed_benchmark_resubmitted_reuses_finished_embeddings(tmp_path: Path, session_cache: Path) -> None:
    """(2, embeddings) The benchmark driver SIGKILLed right after its image embeddings were written:
    the resubmitted job finds them (same folder, same _SUCCESS, not rewritten) and finishes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import QUICK_CONFIG, REPO

    # a test split of its own, so its embeddings are made by this job (rs-tiny comes from the cache)
    args = [sys.executable, str(REPO / "rayjobs" / "full_benchmark.py"), "--config", str(QUICK_CONFIG),
            "--output-dir", str(tmp_path / "out"), "--set", f"cache_dir={session_cache}",
            "--set", "mlflow.enabled=false", "--set", "modes=[v2v]", "--set", "report.enabled=false",
            "--set", "datasets=[{name: synthrs, format: synthrs, synthrs: {seed: 0, n_train: 256, n_val: 16, n_test: 41}}]"]
    env = {**os.environ, "RAY_ADDRESS": ""}  # its own local Ray: killing the group kills the job
    embeddings = session_cache / "embeddings"
    before_start = {p.parent for p in embeddings.glob("images-*/_SUCCESS")}
    proc = subprocess.Popen(args, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, made = time.time() + 900, set()
    while not made and time.time() < deadline and proc.poll() is None:
        made = {p.parent for p in embeddings.glob("images-*/_SUCCESS")} - before_start
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert made, "the job never wrote its image embeddings"
    stamp = {d: ((d / "_SUCCESS").stat().st_mtime_ns, (d / "_SUCCESS").read_text()) for d in made}
    t0 = time.monotonic()
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    recomputed = [d for d, s in stamp.items() if ((d / "_SUCCESS").stat().st_mtime_ns, (d / "_SUCCESS").read_text()) != s]
    leftovers = list(embeddings.glob("*.tmp-*"))
    _show("killed benchmark", {"embedding_stages_done_before_kill": len(made), "recomputed_after_resubmit": len(recomputed),
                               "resubmitted_seconds": round(time.monotonic() - t0, 1), "tmp_folders_left": len(leftovers)})
    assert recomputed == []
    assert list((tmp_path / "out").rglob("results.csv")), "the resubmitted job wrote no results"
