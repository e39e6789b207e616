"""Gemini Batch mode: the real google-genai client against the fake server's batch endpoints
(submit, poll, resume after a crash, never pay twice, failed jobs, invalid answers, 0.5x cost)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from rsretrieval.generation.batch import BatchManifest, BatchStillRunning
from rsretrieval.generation.config import GenerationConfig
from rsretrieval.fake_gemini.server import FakeGeminiServer, FakeRequest, FaultConfig
from rsretrieval.generation.store import ResponseStore
from rsretrieval.pipelines.stages.generation_batch import run_batch_generation
from tests.gemini_fakes import task_responder

genai = pytest.importorskip("google.genai")
from google.genai import types  # noqa: E402

TASK = "text_scenes"
CAPTIONS = [f"A red car number {i} is parked next to a white house. Two tall trees stand along the long road."
            for i in range(10)]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGeminiServer]:
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    with FakeGeminiServer(task_responder, FaultConfig(batch_polls=3)) as srv:
        yield srv


def _cfg(server: FakeGeminiServer, **kw) -> GenerationConfig:
    return GenerationConfig(backend="gemini", mode="batch", base_url=server.base_url, timeout_s=5,
                            batch_poll_s=0.01, **kw)


def _inputs(captions: list[str] = CAPTIONS) -> pa.Table:
    return pa.table({"input_id": [f"c{i}" for i in range(len(captions))], "text": captions})


def _events(store: Path) -> list[dict]:
    return [json.loads(line) for line in (store / "_batches" / f"{TASK}.jsonl").read_text().splitlines()]


def _counts(server: FakeGeminiServer) -> tuple[int, int, int]:
    return server.batches_created, sum(server.requests_per_input.values()), sum(server.successes_per_input.values())


def test_batch_run_stores_records_and_a_rerun_submits_nothing(server: FakeGeminiServer, tmp_path: Path) -> None:
    cfg = _cfg(server)
    summary, recs = run_batch_generation(TASK, _inputs(), cfg, tmp_path)
    assert (summary.inputs, summary.requested, summary.ok, summary.failed, summary.calls) == (10, 10, 10, 0, 10)
    assert set(recs) == {f"c{i}" for i in range(10)}
    for r in recs.values():
        assert r.status == "ok" and r.tokens_in > 0 and r.tokens_out > 0 and r.calls == 1
        assert r.generator == "gemini-2.5-flash@A.1.4.v1 (batch)"
        assert json.loads(r.parsed)[0].startswith("A red car number")
    assert _counts(server) == (1, 10, 10)
    assert summary.cost_usd > 0
    assert summary.cost_usd == pytest.approx(0.5 * cfg.cost_usd(summary.tokens_in, summary.tokens_out))
    assert summary.cost_usd == pytest.approx(cfg.cost_usd(summary.tokens_in, summary.tokens_out, batch=True))
    events = _events(tmp_path)
    assert [e["event"] for e in events] == ["intent", "created", "finished"]
    assert events[0]["display_name"].startswith(f"rsr-{TASK}-") and len(events[0]["keys"]) == 10
    assert events[0]["input_ids"] == [f"c{i}" for i in range(10)]
    assert events[1]["name"] == "batches/fake000001" and events[2]["state"] == "JOB_STATE_SUCCEEDED"
    assert server.batches["fake000001"]["polls"] == 3 and server.batches["fake000001"]["display_name"] == events[0]["display_name"]

    again, recs2 = run_batch_generation(TASK, _inputs(), cfg, tmp_path)
    assert _counts(server) == (1, 10, 10)  # nothing submitted, nothing paid
    assert (again.skipped_done, again.requested, again.ok, again.calls, again.cost_usd) == (10, 0, 10, 0, 0.0)
    assert {k: r.key for k, r in recs2.items()} == {k: r.key for k, r in recs.items()}
    assert len(_events(tmp_path)) == 3


def test_inlined_requests_match_the_online_requests(server: FakeGeminiServer, tmp_path: Path) -> None:
    import asyncio

    from rsretrieval.generation.gemini import GeminiGenerator, GenerationInput
    from rsretrieval.generation.limiter import LocalLimiter
    from rsretrieval.generation.tasks import get_task

    img = pa.table({"input_id": ["i0"], "uri": [str(tmp_path / "x.png")], "extra_text": ["counts: tank 11"]})
    (tmp_path / "x.png").write_bytes(b"\x89PNG fake")
    run_batch_generation("image_graph", img, _cfg(server), tmp_path / "store")
    inline = server.batches["fake000001"]["requests"][0]
    assert set(inline["metadata"]) == {"key"}
    gen = GeminiGenerator(_cfg(server), LocalLimiter(6000, 10**8), api_key="test-key")
    inp = GenerationInput("i0", None, b"\x89PNG fake", "image/png", "counts: tank 11")
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(gen.generate(get_task("image_graph"), inp))
        loop.run_until_complete(gen.client.aio.aclose())
    finally:
        loop.close()
    assert server.requests[-1].body == inline["request"]  # same contents, system prompt, schema
    assert server.requests[-1].input_key == server.requests[0].input_key


def test_crash_after_create_is_resumed_by_display_name(server: FakeGeminiServer, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    real_append = BatchManifest.append

    def killed_before_naming(self: BatchManifest, event: str, **fields) -> None:
        if event == "created":
            raise KeyboardInterrupt("killed between create() and the manifest write")
        real_append(self, event, **fields)

    monkeypatch.setattr(BatchManifest, "append", killed_before_naming)
    with pytest.raises(KeyboardInterrupt):
        run_batch_generation(TASK, _inputs(), _cfg(server), tmp_path)
    monkeypatch.setattr(BatchManifest, "append", real_append)
    assert [e["event"] for e in _events(tmp_path)] == ["intent"] and server.batches_created == 1
    # newer jobs on the same key: the list is newest first, 2 a page, so ours is on page 2
    client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=server.base_url, api_version="v1beta"))
    for i in range(3):
        client.batches.create(model="gemini-2.5-flash", src=[types.InlinedRequest(contents="other")],
                              config={"display_name": f"someone-else-{i}"})

    import google.genai.batches as sdk_batches

    real_list = sdk_batches.Batches.list
    monkeypatch.setattr(sdk_batches.Batches, "list", lambda self, config=None: real_list(self, config={"page_size": 2}))
    summary, recs = run_batch_generation(TASK, _inputs(), _cfg(server), tmp_path)
    assert server.batches_created == 4  # found by display name, not created again
    assert summary.ok == 10 and all(r.status == "ok" for r in recs.values())
    events = _events(tmp_path)
    assert [e["event"] for e in events] == ["intent", "created", "finished"]
    assert events[1]["name"] == "batches/fake000001"


def test_intent_without_a_job_is_submitted_once(server: FakeGeminiServer, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import google.genai.batches as sdk_batches

    def died_before_sending(self, **kw):
        raise KeyboardInterrupt("killed before the request left")

    with monkeypatch.context() as m:
        m.setattr(sdk_batches.Batches, "create", died_before_sending)
        with pytest.raises(KeyboardInterrupt):
            run_batch_generation(TASK, _inputs(), _cfg(server), tmp_path)
    assert server.batches_created == 0
    summary, _ = run_batch_generation(TASK, _inputs(), _cfg(server), tmp_path)
    assert server.batches_created == 1 and summary.ok == 10
    events = _events(tmp_path)
    assert [(e["event"], e.get("state")) for e in events] == [
        ("intent", None), ("finished", "NOT_CREATED"), ("intent", None), ("created", None),
        ("finished", "JOB_STATE_SUCCEEDED")]
    assert events[0]["display_name"].endswith("-0") and events[2]["display_name"].endswith("-1")


def test_invalid_answers_become_failed_records_with_the_reason(server: FakeGeminiServer, tmp_path: Path) -> None:
    def responder(req: FakeRequest) -> str:
        return json.dumps({"scenes": ["x"] * 7}) if "number 3 " in req.texts[0] else task_responder(req)

    server.responder = responder
    summary, recs = run_batch_generation(TASK, _inputs(), _cfg(server), tmp_path)
    assert (summary.ok, summary.failed) == (9, 1)
    bad = recs["c3"]
    assert bad.status == "failed" and "schema violation" in bad.error and bad.paid and bad.tokens_in > 0
    run_batch_generation(TASK, _inputs(), _cfg(server), tmp_path)
    assert server.batches_created == 1  # a paid failure is not requested again ...
    server.responder = task_responder
    summary, recs = run_batch_generation(TASK, _inputs(), _cfg(server, retry_failed=True), tmp_path)
    assert server.batches_created == 2 and recs["c3"].status == "ok"  # ... unless asked
    assert summary.requested == 1 and summary.calls == 1 and summary.ok == 10


def test_failed_batch_makes_its_keys_requestable_again(server: FakeGeminiServer, tmp_path: Path) -> None:
    server.faults = FaultConfig(batch_state="BATCH_STATE_FAILED")
    summary, recs = run_batch_generation(TASK, _inputs(), _cfg(server), tmp_path)
    assert summary.failed == 10 and summary.cost_usd == 0
    assert all(r.status == "failed" and "JOB_STATE_FAILED" in r.error and not r.paid for r in recs.values())
    assert not server.requests_per_input  # nothing was answered
    server.faults = FaultConfig(rate_batch_item_error=0.3, seed=1)
    summary, recs = run_batch_generation(TASK, _inputs(), _cfg(server), tmp_path)
    item_errors = [r for r in recs.values() if r.status == "failed"]
    assert server.batches_created == 2 and item_errors and summary.ok == 10 - len(item_errors)
    assert all("batch item error 13" in r.error and not r.paid for r in item_errors)
    server.faults = FaultConfig()
    summary, recs = run_batch_generation(TASK, _inputs(), _cfg(server), tmp_path)
    assert server.batches_created == 3 and summary.requested == len(item_errors) and summary.ok == 10
    names = [e["display_name"] for e in _events(tmp_path) if e["event"] == "intent"]
    assert len(set(names)) == 3 and names[1].endswith("-1")  # same keys resubmitted under a new name


def test_polling_is_bounded_and_a_rerun_resumes(server: FakeGeminiServer, tmp_path: Path) -> None:
    server.faults = FaultConfig(batch_polls=10**6)
    with pytest.raises(BatchStillRunning, match=r"batches/fake000001 .*rerun the same command"):
        run_batch_generation(TASK, _inputs(), _cfg(server), tmp_path, max_wait_s=0.05)
    assert not ResponseStore(tmp_path).latest(TASK)
    server.faults = FaultConfig(batch_polls=1)
    summary, _ = run_batch_generation(TASK, _inputs(), _cfg(server), tmp_path)
    assert server.batches_created == 1 and summary.ok == 10 and summary.calls == 10
    assert summary.skipped_done == 0  # collected by this run, from the job of the earlier one


def test_large_runs_are_split_into_several_jobs(server: FakeGeminiServer, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("rsretrieval.generation.batch.MAX_INLINE_REQUESTS", 4)
    dup = pa.table({"input_id": ["c0", "dup"], "text": [CAPTIONS[0]] * 2})
    summary, recs = run_batch_generation(TASK, pa.concat_tables([_inputs(), dup.slice(1)]), _cfg(server), tmp_path)
    assert server.batches_created == 3 and summary.ok == 11 and sum(server.requests_per_input.values()) == 10
    assert recs["dup"].key == recs["c0"].key  # same content: asked once


def test_fake_batch_endpoints_cancel_and_delete(server: FakeGeminiServer) -> None:
    client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=server.base_url, api_version="v1"))
    job = client.batches.create(model="gemini-2.5-flash", src=[types.InlinedRequest(contents="hi")],
                                config={"display_name": "to-cancel"})
    assert job.state == types.JobState.JOB_STATE_PENDING and job.display_name == "to-cancel"
    assert client.batches.get(name=job.name).state == types.JobState.JOB_STATE_RUNNING  # 1 of 3 polls
    client.batches.cancel(name=job.name)
    assert client.batches.get(name=job.name).state == types.JobState.JOB_STATE_CANCELLED
    assert not server.requests_per_input
    client.batches.delete(name=job.name)
    assert [j.name for j in client.batches.list()] == []


def test_generate_job_in_batch_mode_chains_image_graph(server: FakeGeminiServer, tmp_path: Path, session_cache: Path,
                                                       ray_local) -> None:
    """`rayjobs/generate.py` with generation.mode=batch: counts, then graphs, each as batch jobs; half price."""
    from rayjobs.generate import main
    from tests.conftest import QUICK_CONFIG

    rows = main(["--config", str(QUICK_CONFIG), "--output-dir", str(tmp_path), "--limit", "4",
                 "--set", f"cache_dir={session_cache}", "--set", f"generation.store_dir={tmp_path / 'store'}",
                 "--set", "generation.backend=gemini", "--set", "generation.mode=batch",
                 "--set", "generation.batch_poll_s=0.01", "--set", f"generation.base_url={server.base_url}",
                 "--task", "image_graph"])
    assert [(r["task"], r["ok"], r["backend"]) for r in rows] == [("object_counts", 4, "gemini-batch"),
                                                                 ("image_graph", 4, "gemini-batch")]
    assert server.batches_created == 2
    assert sum("Object counts from step 1" in " ".join(r.texts) for r in server.requests) == 4
    assert all(r["cost_usd"] > 0 for r in rows)
