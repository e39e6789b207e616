"""Generation under faults that the quota/kill phases of :mod:`bench_generation` do not cover.

Each phase runs the real generation stage (Ray Data actors, the pacer actor, google-genai) against
the fake Gemini server and returns the figures the reliability suite asserts and prints:

1. node loss: a worker node of a ``ray.cluster_utils.Cluster`` is removed while its actors have
   requests in flight; reports stored outputs per input and the paid-call amplification
   (server hits / unique inputs: a request cut off with its node may still be billed).
2. fault mix: 429 with retryDelay, 5xx and timeouts on a share of requests, under a server-side
   requests/min quota equal to the job's; reports rows lost, the smallest retry gap over the
   retryDelay asked for, and the requests the server refused for quota.
3. poison: inputs that always get a 5xx or always a malformed answer; reports their attempts
   against the configured bounds, the error rows and the rest of the job.
"""

from __future__ import annotations

import collections
import threading
import time
from pathlib import Path
from typing import Any

from rsretrieval.config import GenerationConfig
from rsretrieval.fake_gemini.server import FakeGeminiServer, FaultConfig
from rsretrieval.generation.store import ResponseStore
from rsretrieval.benchmarks.generation import inputs, scenes_responder

TASK = "text_scenes"


def _cfg(server: FakeGeminiServer, **kw: Any) -> GenerationConfig:
    base = dict(backend="gemini", base_url=server.base_url, backoff_base_s=0.05, backoff_max_s=0.5,
                max_attempts=30, timeout_s=10, requests_per_minute=6000)
    return GenerationConfig(**{**base, **kw})


def stored_per_input(store: Path) -> collections.Counter[str]:
    """How many ok records the store holds per input id (appended lines, not the latest view)."""
    return collections.Counter(r.input_id for r in ResponseStore(store).records(TASK) if r.status == "ok")


def _busiest_worker(cluster: Any) -> Any:
    """The non-head node with the fewest free CPUs: the one holding generation actors."""
    import ray

    free = ray._private.state.available_resources_per_node()
    workers = [n for n in cluster.list_all_nodes() if n is not cluster.head_node]
    return min(workers, key=lambda n: free.get(n.unique_id, {}).get("CPU", 0.0))


def node_loss_phase(n: int, store: Path, after_fraction: float = 0.3) -> dict[str, Any]:
    """Needs no Ray instance running in this process: starts a 3-node cluster (a head with no CPU,
    so every actor and task runs on the two worker nodes) and shuts it down at the end."""
    import ray
    from ray.cluster_utils import Cluster

    from rsretrieval.pipelines.stages.generation import run_generation

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    for _ in range(2):
        cluster.add_node(num_cpus=2)
    removed: dict[str, Any] = {}
    try:
        ray.init(address=cluster.address)
        cluster.wait_for_nodes()
        with FakeGeminiServer(scenes_responder, FaultConfig(latency_s=0.3)) as server:
            cfg = _cfg(server, actors=2, concurrency_per_actor=4, batch_size=8, cpus_per_actor=0.5)

            def remove_when_busy() -> None:
                while sum(server.successes_per_input.values()) < after_fraction * n:
                    time.sleep(0.02)
                node = _busiest_worker(cluster)
                removed["answered"] = sum(server.successes_per_input.values())
                cluster.remove_node(node, allow_graceful=False)
                removed["at"] = time.monotonic()

            killer = threading.Thread(target=remove_when_busy, daemon=True)
            killer.start()
            t0 = time.monotonic()
            summary, records = run_generation(TASK, inputs(n), cfg, store)
            killer.join(timeout=5)
            answers = sum(server.successes_per_input.values())
            requests = sum(server.requests_per_input.values())
    finally:
        ray.shutdown()
        cluster.shutdown()
    per_input = stored_per_input(store)
    return {"rows": n, "node_removed_after_answers": removed.get("answered"), "ok": summary.ok,
            "rows_lost": n - sum(1 for r in records.values() if r.status == "ok"),
            "stored_outputs_min": min(per_input.values(), default=0), "stored_outputs_max": max(per_input.values(), default=0),
            "inputs_stored": len(per_input), "server_answers": answers, "server_requests": requests,
            "paid_call_amplification": requests / n, "seconds": time.monotonic() - t0}


def fault_mix_phase(n: int, store: Path, rate: float = 0.3, rpm: int = 1200) -> dict[str, Any]:
    """Needs a Ray instance. A third of ``rate`` each: 429 (retryDelay 0.3 s), 5xx, timeouts."""
    from rsretrieval.pipelines.stages.generation import run_generation

    faults = FaultConfig(rate_429=rate / 3, rate_5xx=rate / 3, rate_timeout=rate / 3, retry_delay_s=0.3,
                         timeout_sleep_s=3.0, rpm_quota=rpm, seed=11)
    with FakeGeminiServer(scenes_responder, faults) as server:
        cfg = _cfg(server, actors=2, concurrency_per_actor=4, batch_size=8, requests_per_minute=rpm, timeout_s=1.0)
        t0 = time.monotonic()
        summary, records = run_generation(TASK, inputs(n), cfg, store)
        seconds = time.monotonic() - t0
        outcomes = collections.Counter(e[3] for e in server.events)
        gaps = server.retry_gaps()
        _, peak = server.sustained_and_peak_rpm(window_s=10.0)
    return {"rows": n, "fault_rate": rate, "rows_lost": n - sum(1 for r in records.values() if r.status == "ok"),
            "requests": sum(outcomes.values()), "answered_429": outcomes["429"],
            "answered_5xx": outcomes["500"] + outcomes["503"], "timed_out": outcomes["timeout"],
            "refused_for_quota": outcomes["quota"], "quota_rpm": rpm, "peak_rpm_10s": peak,
            "retries_after_429": len(gaps),
            "min_retry_gap_over_retry_delay": min((g / d for g, d in gaps if d > 0), default=float("nan")),
            "calls_per_row": summary.calls / n, "seconds": seconds}


def poison_phase(n: int, store: Path, max_attempts: int = 4, max_reasks: int = 2) -> dict[str, Any]:
    """Needs a Ray instance. Rows 0 and 1 are poison: always 5xx, always malformed JSON."""
    from rsretrieval.pipelines.stages.generation import run_generation

    faults = FaultConfig(poison={"row 0:": "5xx", "row 1:": "malformed"})
    with FakeGeminiServer(scenes_responder, faults) as server:
        cfg = _cfg(server, actors=2, batch_size=8, max_attempts=max_attempts, max_reasks=max_reasks)
        summary, records = run_generation(TASK, inputs(n), cfg, store)
        hits = collections.Counter()
        for req in server.requests:
            text = " ".join(req.texts)
            hits["row0" if "row 0:" in text else "row1" if "row 1:" in text else "other"] += 1
    failed = {i: r.error for i, r in records.items() if r.status != "ok"}
    return {"rows": n, "ok": summary.ok, "failed": summary.failed, "failed_ids": sorted(failed),
            "errors": failed, "attempts_5xx_poison": hits["row0"], "max_attempts": max_attempts,
            "attempts_malformed_poison": hits["row1"], "max_asks": 1 + max_reasks,
            "requests_other_rows": hits["other"]}
