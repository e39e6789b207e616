"""Generation: prompts, validation, the append-only store, pacing, and the real google-genai
client against the fake Gemini server (retries, RetryInfo, re-asks, paid/unpaid failures)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from rsretrieval.generation.config import GenerationConfig
from rsretrieval.fake_gemini.server import FakeGeminiServer, FaultConfig
from rsretrieval.generation.limiter import LocalLimiter, Pacer
from rsretrieval.generation.store import GenerationRecord, ResponseStore
from rsretrieval.generation.tasks import TASKS, InvalidResponse, get_task
from tests.gemini_fakes import task_responder

THESIS_LINES = {
    "fine_grained_caption": "Start your response immediately by the description.",
    "object_counts": "If the count is unclear or very large, use the value -1.",
    "image_graph": "Include a global scene node (e.g., `Airport`, `Urban Area`) and connect it to objects via spatial relations.",
    "text_graph": "Only use entities (e.g., car, tree, building) as subjects. Attributes can only appear as objects.",
    "text_scenes": "Split into at most 6 scenes with at least 2 interacting objects each.",
}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_prompts_are_the_thesis_verbatim(task: str) -> None:
    assert THESIS_LINES[task] in TASKS[task].system_prompt
    assert TASKS[task].prompt_version.startswith("A.1.")


def test_answers_are_validated() -> None:
    scenes = get_task("text_scenes")
    assert scenes.parse('{"scenes": ["a red car next to a house", " "]}') == ["a red car next to a house"]
    with pytest.raises(InvalidResponse, match="not valid JSON"):
        scenes.parse("- a red car next to a house")
    with pytest.raises(InvalidResponse, match="schema"):
        scenes.parse("{}")
    with pytest.raises(InvalidResponse, match="schema"):
        scenes.parse(json.dumps({"scenes": ["x"] * 7}))  # A.1.4: at most 6
    graph = get_task("text_graph")
    bad = {"nodes": [{"name": "red", "type": "attribute"}, {"name": "car", "type": "object"}],
           "edges": [{"subject": "red", "relation": "of", "object": "car"}]}
    with pytest.raises(InvalidResponse, match="attribute cannot be a subject"):
        graph.parse(json.dumps(bad))
    counts = get_task("object_counts").parse('{"object_counts": [{"object": "tank", "count": 11}, {"object": "tree", "count": -1}]}')
    assert counts.object_counts == {"tank": 11, "tree": -1}
    with pytest.raises(InvalidResponse):
        get_task("object_counts").parse('{"object_counts": [{"object": "tank", "count": 0}]}')
    g = get_task("image_graph").parse(task_responder_for("generate a structured scene graph"))
    assert g.scene == "Industrial Area" and g.objects[0].attributes == {"color": "white"}


def task_responder_for(system: str) -> str:
    from rsretrieval.fake_gemini.server import FakeRequest

    return task_responder(FakeRequest("m", "v1beta", {}, [], 0, system, "k"))


def _rec(key: str, status: str, **kw) -> GenerationRecord:
    return GenerationRecord(key=key, task="text_scenes", model="m", prompt_version="A.1.4.v1", input_hash="h",
                            input_id=key, status=status, **kw)


def test_store_is_append_only_and_survives_a_torn_write(tmp_path: Path) -> None:
    store = ResponseStore(tmp_path)
    store.append(_rec("a", "ok", raw_text="{}", tokens_in=10))
    store.append(_rec("b", "failed", raw_text="{}", tokens_in=10, error="schema"))  # paid, never validated
    store.append(_rec("c", "failed", error="503 after 6 attempts"))  # never answered: unpaid
    store.close()
    part = next((tmp_path / "text_scenes").glob("part-*.jsonl"))
    with open(part, "a") as f:
        f.write('{"key": "d", "task": "text_sc')  # a writer killed mid-record
    again = ResponseStore(tmp_path)
    assert set(again.latest("text_scenes")) == {"a", "b", "c"}
    assert again.done_keys("text_scenes") == {"a", "b"}
    assert again.done_keys("text_scenes", retry_failed=True) == {"a"}
    again.append(_rec("b", "ok", raw_text="{}"))  # a later success wins
    assert again.latest("text_scenes")["b"].status == "ok"


def test_pacer_spaces_requests_and_tokens() -> None:
    p = Pacer(requests_per_minute=60, tokens_per_minute=6000)
    waits = [p.reserve(10, now=100.0) for _ in range(4)]
    assert waits == pytest.approx([0, 1, 2, 3])
    q = Pacer(requests_per_minute=6000, tokens_per_minute=600)  # token-bound: 10 tokens/s
    assert [q.reserve(20, now=0.0) for _ in range(3)] == pytest.approx([0, 2, 4])


def _generator(server: FakeGeminiServer, **overrides):
    from rsretrieval.generation.gemini import GeminiGenerator

    cfg = GenerationConfig(backend="gemini", base_url=server.base_url, timeout_s=2, backoff_base_s=0.01,
                           backoff_max_s=0.05, **overrides)
    return GeminiGenerator(cfg, LocalLimiter(6000, 10**8), api_key="test-key")


def _run(coro):
    return asyncio.new_event_loop().run_until_complete(coro)


def test_gemini_generator_ok_and_accounting() -> None:
    from rsretrieval.generation.gemini import GenerationInput

    with FakeGeminiServer(task_responder) as server:
        gen = _generator(server)
        rec = _run(gen.generate(get_task("text_scenes"), GenerationInput(
            "c1", "A red car is parked next to a white house. Two trees stand along the long road.")))
        assert rec.status == "ok" and rec.calls == 1 and rec.tokens_in > 0 and rec.tokens_out > 0
        assert json.loads(rec.parsed) == ["A red car is parked next to a white house", "Two trees stand along the long road"]
        img = _run(gen.generate(get_task("object_counts"), GenerationInput("i1", image_bytes=b"\x89PNG fake")))
        assert img.status == "ok" and json.loads(img.parsed)["object_counts"]["tank"] == 11


def test_429_retry_delay_is_honoured_and_attempts_are_bounded() -> None:
    from rsretrieval.generation.gemini import GenerationInput

    with FakeGeminiServer(task_responder, FaultConfig(rate_429=1.0, retry_delay_s=0.4)) as server:
        gen = _generator(server, max_attempts=3)  # jitter alone would wait <= 0.05 s
        t0 = time.monotonic()
        rec = _run(gen.generate(get_task("text_scenes"), GenerationInput("b", "two red cars next to a house.")))
        elapsed = time.monotonic() - t0
    assert rec.status == "failed" and rec.calls == 3 and "429" in rec.error and "after 3 attempts" in rec.error
    assert not rec.paid  # never answered: a rerun will try again
    assert elapsed >= 2 * 0.4  # both waits followed the server's RetryInfo


def test_transient_faults_are_retried_until_success() -> None:
    from rsretrieval.generation.gemini import GenerationInput

    faults = FaultConfig(rate_429=0.3, rate_5xx=0.3, retry_delay_s=0.05, seed=3)
    with FakeGeminiServer(task_responder, faults) as server:
        gen = _generator(server, max_attempts=12)
        recs = [_run(gen.generate(get_task("text_graph"), GenerationInput(f"c{i}", f"caption {i} with a red car")))
                for i in range(20)]
        assert all(r.status == "ok" for r in recs)
        assert sum(r.calls for r in recs) > 20  # faults happened and were absorbed
        assert all(server.successes_per_input[k] == 1 for k in server.successes_per_input)


def test_invalid_answers_are_reasked_then_recorded_as_paid_failures() -> None:
    from rsretrieval.generation.gemini import GenerationInput

    with FakeGeminiServer(task_responder, FaultConfig(rate_schema_violation=1.0)) as server:
        rec = _run(_generator(server, max_reasks=2).generate(get_task("text_scenes"), GenerationInput("c", "a car.")))
        assert rec.status == "failed" and rec.calls == 3 and rec.paid and "re-asks" in rec.error


def test_wrong_key_stops_instead_of_failing_rows() -> None:
    from rsretrieval.generation.gemini import GenerationAuthError, GenerationInput, GeminiGenerator

    with pytest.raises(GenerationAuthError, match="GEMINI_API_KEY"):
        import os

        saved = {k: os.environ.pop(k, None) for k in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
        try:
            GeminiGenerator(GenerationConfig(backend="gemini"), LocalLimiter(60, 10**6))
        finally:
            os.environ.update({k: v for k, v in saved.items() if v})
    assert GenerationInput("x", "t").hash() != GenerationInput("x", "t", extra_text="counts").hash()
