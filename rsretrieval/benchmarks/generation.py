"""Generation under quota, faults and a killed job, against the fake Gemini server (measured, one run).

1. quota: ``actors`` actors share one pacer set to the server's requests/min quota; reports the
   sustained and peak request rate the server saw and how many requests it refused for quota.
2. faults: a share of requests answered 429 (with RetryInfo) or 5xx; reports rows without an
   answer (must be 0) and extra calls per row.
3. kill: a generation job in a child process is SIGKILLed once half of its inputs are answered,
   then resubmitted; reports requests the second job sent for inputs the first had finished
   (must be 0) and inputs answered twice because the kill hit between answer and store write.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from rsretrieval.config import GenerationConfig
from rsretrieval.fake_gemini.server import FakeGeminiServer, FaultConfig, FakeRequest
from rsretrieval.generation.store import ResponseStore

_ID = re.compile(r"\brow (\d+):")


def scenes_responder(req: FakeRequest) -> str:
    return '{"scenes": ["a red car parked next to a white house", "two trees along the road"]}'


def inputs(n: int) -> pa.Table:
    return pa.table({"input_id": [f"row{i}" for i in range(n)],
                     "text": [f"row {i}: a red car parked next to a white house, two trees along the road." for i in range(n)]})


def _cfg(server: FakeGeminiServer, **kw: Any) -> GenerationConfig:
    base = dict(backend="gemini", base_url=server.base_url, backoff_base_s=0.05, backoff_max_s=0.5,
                max_attempts=30, timeout_s=10)
    return GenerationConfig(**{**base, **kw})


def quota_phase(n: int, actors: int, rpm: int, store: Path) -> dict[str, float]:
    from rsretrieval.pipelines.stages.generation import run_generation

    with FakeGeminiServer(scenes_responder, FaultConfig(rpm_quota=rpm, latency_s=0.2)) as server:
        cfg = _cfg(server, actors=actors, concurrency_per_actor=8, batch_size=16, requests_per_minute=rpm)
        summary, _ = run_generation("text_scenes", inputs(n), cfg, store)
        sustained, peak = server.sustained_and_peak_rpm(window_s=60.0 if n >= rpm else 10.0)
        refused = sum(server.requests_per_input.values()) - sum(server.successes_per_input.values())
    return {"quota_rpm": rpm, "actors": actors, "rows": n, "ok": summary.ok, "sustained_rpm": sustained,
            "peak_rpm": peak, "peak_over_quota": peak / rpm, "requests_refused_for_quota": refused}


def fault_phase(n: int, actors: int, fault_rate: float, store: Path) -> dict[str, float]:
    from rsretrieval.pipelines.stages.generation import run_generation

    faults = FaultConfig(rate_429=fault_rate / 2, rate_5xx=fault_rate / 2, retry_delay_s=0.2, seed=7)
    with FakeGeminiServer(scenes_responder, faults) as server:
        summary, records = run_generation("text_scenes", inputs(n), _cfg(server, actors=actors, requests_per_minute=6000), store)
        gaps = server.retry_gaps()
    lost = n - sum(1 for r in records.values() if r.status == "ok")
    return {"fault_rate": fault_rate, "rows": n, "rows_lost": lost, "calls": summary.calls,
            "extra_calls_per_row": summary.calls / n - 1, "retries_after_429": len(gaps),
            "min_retry_gap_over_retry_delay": min((g / d for g, d in gaps), default=float("nan"))}


_CHILD = """
import sys, ray
sys.path.insert(0, {repo!r})
from rsretrieval.benchmarks.generation import inputs
from rsretrieval.pipelines.stages.generation import run_generation
from rsretrieval.config import GenerationConfig
ray.init(num_cpus=2, include_dashboard=False)
run_generation("text_scenes", inputs({n}), GenerationConfig.model_validate_json({cfg!r}), {store!r})
"""


def kill_phase(n: int, actors: int, store: Path) -> dict[str, float]:
    repo = str(Path(__file__).resolve().parents[2])
    with FakeGeminiServer(scenes_responder, FaultConfig(latency_s=0.3)) as server:
        cfg = _cfg(server, actors=actors, concurrency_per_actor=2, batch_size=4, requests_per_minute=600)
        code = _CHILD.format(repo=repo, n=n, cfg=cfg.model_dump_json(), store=str(store))
        env = {**os.environ, "GEMINI_API_KEY": os.environ.get("GEMINI_API_KEY", "bench-key")}
        child = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while sum(server.successes_per_input.values()) < n // 2 and child.poll() is None:
            time.sleep(0.05)
        os.killpg(child.pid, signal.SIGKILL)  # the whole job: driver, raylet, actors
        child.wait()
        time.sleep(1.0)
        finished = {r.input_id for r in ResponseStore(store).latest("text_scenes").values() if r.status == "ok"}
        answered_first = sum(server.successes_per_input.values())
        server.reset_counts()
        child = subprocess.run([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=600)
        asked_again = {f"row{m.group(1)}" for r in server.requests for m in [_ID.search(" ".join(r.texts))] if m}
        second_requests = len(server.requests)
        done = {r.input_id for r in ResponseStore(store).latest("text_scenes").values() if r.status == "ok"}
    return {"rows": n, "answered_before_kill": answered_first, "recorded_before_kill": len(finished),
            "repeated_for_finished_inputs": len(asked_again & finished),
            "answered_twice_in_flight_at_kill": answered_first - len(finished),
            "requests_second_job": second_requests, "inputs_asked_second_job": len(asked_again),
            "rows_done_after_resubmit": len(done), "second_job_exit_code": child.returncode}


def bench(rows: int = 600, actors: int = 8, quota_rpm: int = 600, fault_rows: int = 300, fault_rate: float = 0.3,
          kill_rows: int = 60, phases: list[str] | tuple[str, ...] = ("quota", "faults", "kill")) -> dict[str, Any]:
    """The phases asked for, in one run on a local Ray instance (``rsretrieval bench generation``)."""
    import ray

    os.environ.setdefault("GEMINI_API_KEY", "bench-key")  # the fake server takes any key
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
    out: dict[str, Any] = {"note": "fake Gemini server on 127.0.0.1 (simulated API), measured in one run"}
    with tempfile.TemporaryDirectory() as tmp:
        if "quota" in phases:
            out["quota"] = quota_phase(rows, actors, quota_rpm, Path(tmp) / "q")
        if "faults" in phases:
            out["faults"] = fault_phase(fault_rows, actors, fault_rate, Path(tmp) / "f")
        if "kill" in phases:
            ray.shutdown()  # the killed job runs its own local cluster
            out["kill"] = kill_phase(kill_rows, 2, Path(tmp) / "k")
    return out
