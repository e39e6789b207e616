"""The Ray generation stage against the fake Gemini server: every row answered once, paid work
never requested again on a rerun, poison rows recorded without failing the job."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from rsretrieval.generation.config import GenerationConfig
from rsretrieval.fake_gemini.server import FakeGeminiServer, FaultConfig
from tests.gemini_fakes import task_responder


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")


def _inputs(n: int) -> pa.Table:
    return pa.table({"input_id": [f"cap{i}" for i in range(n)],
                     "text": [f"Caption {i}: a red car is parked next to a white house. Two trees stand along a road."
                              for i in range(n)]})


def test_generation_stage_resumes_without_paying_twice(ray_local, tmp_path: Path) -> None:
    from rsretrieval.pipelines.stages.generation import run_generation

    faults = FaultConfig(rate_429=0.3, rate_5xx=0.1, rate_malformed=0.1, retry_delay_s=0.05, seed=1)
    with FakeGeminiServer(task_responder, faults) as server:
        cfg = GenerationConfig(backend="gemini", base_url=server.base_url, actors=2, concurrency_per_actor=4,
                               batch_size=8, backoff_base_s=0.01, backoff_max_s=0.05, max_attempts=20, max_reasks=6,
                               requests_per_minute=6000)
        first, _ = run_generation("text_scenes", _inputs(20), cfg, tmp_path / "store")  # the job "dies" after 20
        assert first.requested == 20 and first.ok == 20 and first.failed == 0
        assert first.calls > 20 and first.tokens_in > 0 and first.cost_usd > 0
        second, records = run_generation("text_scenes", _inputs(40), cfg, tmp_path / "store")  # resubmitted
        assert second.skipped_done == 20 and second.requested == 20 and second.ok == 40
        assert len(records) == 40 and all(r.status == "ok" for r in records.values())
        # nothing already answered was asked again: one successful answer per distinct input
        assert len(server.successes_per_input) == 40 and max(server.successes_per_input.values()) == 1


def test_poison_rows_are_recorded_not_fatal(ray_local, tmp_path: Path) -> None:
    from rsretrieval.pipelines.stages.generation import run_generation

    inputs = pa.table({"input_id": ["ok1", "missing", "ok2"], "text": [None, None, "a car next to a house."],
                       "uri": [None, str(tmp_path / "no-such.png"), None]})
    inputs = inputs.set_column(1, "text", pa.array(["a red car next to a house.", None, "a car next to a house."]))
    with FakeGeminiServer(task_responder, FaultConfig(rate_schema_violation=0.0)) as server:
        cfg = GenerationConfig(backend="gemini", base_url=server.base_url, actors=1, max_reasks=0)
        summary, records = run_generation("text_scenes", inputs, cfg, tmp_path / "store")
    assert summary.inputs == 3 and summary.ok == 2 and summary.failed == 1
    assert set(records) == {"ok1", "ok2"}


def test_generate_job_chains_image_graph_and_dry_run_sees_the_store(ray_local, tmp_path: Path, session_cache: Path) -> None:
    from rayjobs.generate import main
    from tests.conftest import QUICK_CONFIG

    with FakeGeminiServer(task_responder) as server:
        common = ["--config", str(QUICK_CONFIG), "--output-dir", str(tmp_path), "--limit", "3",
                  "--set", f"cache_dir={session_cache}", "--set", f"generation.store_dir={tmp_path / 'store'}",
                  "--set", "generation.backend=gemini", "--set", f"generation.base_url={server.base_url}"]
        rows = main(common + ["--task", "image_graph", "--task", "text_scenes"])
        assert {r["task"]: r["ok"] for r in rows} == {"object_counts": 3, "image_graph": 3, "text_scenes": 3}
        n_requests = sum(server.requests_per_input.values())
        assert n_requests == 9  # 3 counts + 3 graphs (the chain) + 3 text scenes
        assert any("Object counts from step 1" in " ".join(r.texts) for r in server.requests)
        estimate = main(common + ["--task", "image_graph", "--task", "text_scenes", "--task", "text_graph", "--dry-run"])
        assert {r["task"]: r["requested"] for r in estimate} == {"image_graph": 3, "text_scenes": 0, "text_graph": 3}
        assert sum(server.requests_per_input.values()) == n_requests  # a dry run sends nothing


def test_generation_after_ray_restarts_in_the_same_process(ray_local, tmp_path: Path) -> None:
    """The pacer handle is cached per Ray session: job ids repeat ("01000000") after a restart, and
    reusing the old session's handle crashed the process (Ray core check failure, exit 1)."""
    from rsretrieval.pipelines.stages.generation import run_generation

    with FakeGeminiServer(task_responder) as server:
        cfg = GenerationConfig(backend="gemini", base_url=server.base_url, actors=1)
        for i in range(2):
            summary, _ = run_generation("text_scenes", _inputs(3), cfg, tmp_path / f"store{i}")
            assert summary.ok == 3
            ray_local.shutdown()
            ray_local.init(address="local", num_cpus=2, include_dashboard=False)  # as conftest's ray_local
