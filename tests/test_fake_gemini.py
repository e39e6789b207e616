"""Tests for the fake Gemini server, driven by the real google-genai client.

google-genai 3.4.0 does not retry by default (``HttpOptions.retry_options`` is
None -> tenacity ``stop_after_attempt(1)``), but its aiohttp transport then does
one implicit, unconfigurable retry after sleeping 1-10 s on connection errors.
Setting ``retry_options=HttpRetryOptions(attempts=1)`` turns both off, so every
client here uses it and the tests stay deterministic.
"""

from __future__ import annotations

import asyncio
import io
import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from PIL import Image
from pydantic import BaseModel

from rsretrieval.fake_gemini.server import FakeGeminiServer, FakeRequest, FaultConfig

genai = pytest.importorskip("google.genai")
from google.genai import errors, types  # noqa: E402

MODEL = "gemini-2.5-flash"

# The sync client uses httpx (or its fork httpx2 when installed): a read timeout
# raises <httpx>.ReadTimeout. The async client uses aiohttp: builtin TimeoutError.
_SYNC_TIMEOUTS: list[type[BaseException]] = []
for _mod in ("httpx", "httpx2"):
    try:
        _SYNC_TIMEOUTS.append(__import__(_mod).TimeoutException)
    except ImportError:
        pass
SYNC_TIMEOUT_EXC = tuple(_SYNC_TIMEOUTS) or (TimeoutError,)


class Caption(BaseModel):
    caption: str


def caption_responder(req: FakeRequest) -> str:
    return json.dumps({"caption": f"cap:{req.texts[0] if req.texts else ''}"})


@pytest.fixture
def server() -> Iterator[FakeGeminiServer]:
    with FakeGeminiServer(responder=caption_responder) as srv:
        yield srv


def make_client(srv: FakeGeminiServer, api_version: str = "v1beta",
                timeout_ms: int | None = 2000,
                retry: types.HttpRetryOptions | None = None) -> genai.Client:
    return genai.Client(api_key="test-key", http_options=types.HttpOptions(
        base_url=srv.base_url, api_version=api_version, timeout=timeout_ms,
        retry_options=retry or types.HttpRetryOptions(attempts=1)))


def tiny_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (255, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


def retry_delay(exc: errors.APIError) -> str:
    """The RetryInfo.retryDelay of a 429, read from the parsed error body."""
    details = exc.details["error"]["details"]
    return next(d["retryDelay"] for d in details if d["@type"].endswith("RetryInfo"))


def test_sync_json_schema_system_instruction(server: FakeGeminiServer) -> None:
    client = make_client(server)
    resp = client.models.generate_content(
        model=MODEL, contents="hello world",
        config=types.GenerateContentConfig(
            system_instruction="be terse", response_mime_type="application/json",
            response_schema=Caption))
    assert json.loads(resp.text) == {"caption": "cap:hello world"}
    assert resp.parsed == Caption(caption="cap:hello world")
    assert resp.usage_metadata.prompt_token_count == len("hello world") // 4 + 1
    assert resp.usage_metadata.candidates_token_count == len(resp.text) // 4 + 1
    assert resp.model_version == MODEL
    req = server.requests[-1]
    assert (req.model, req.api_version, req.system_instruction) == (MODEL, "v1beta", "be terse")
    gen_cfg = req.body["generationConfig"]
    assert gen_cfg["responseMimeType"] == "application/json"
    assert "responseSchema" in gen_cfg or "responseJsonSchema" in gen_cfg
    assert server.successes_per_input[req.input_key] == 1


def test_v1_api_version(server: FakeGeminiServer) -> None:
    client = make_client(server, api_version="v1")
    resp = client.models.generate_content(model="gemini-2.0-flash-lite-001", contents="plain")
    assert json.loads(resp.text) == {"caption": "cap:plain"}
    assert server.requests[-1].api_version == "v1"
    assert server.requests[-1].model == "gemini-2.0-flash-lite-001"


def test_async_with_image_part(server: FakeGeminiServer) -> None:
    client = make_client(server)

    async def go() -> types.GenerateContentResponse:
        try:
            return await client.aio.models.generate_content(model=MODEL, contents=[
                types.Part.from_bytes(data=tiny_png(), mime_type="image/png"),
                "describe this"])
        finally:
            await client.aio.aclose()

    resp = asyncio.run(go())
    req = server.requests[-1]
    assert req.n_images == 1 and req.texts == ["describe this"]
    assert resp.usage_metadata.prompt_token_count == len("describe this") // 4 + 1 + 258
    assert json.loads(resp.text) == {"caption": "cap:describe this"}


def test_429_client_error_with_retry_delay(server: FakeGeminiServer) -> None:
    server.faults = FaultConfig(rate_429=1.0, retry_delay_s=1.5)
    client = make_client(server)  # keep a reference: a collected Client closes its transport
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=MODEL, contents="x")
    assert info.value.code == 429 and info.value.status == "RESOURCE_EXHAUSTED"
    assert retry_delay(info.value) == "1.5s"
    assert sum(server.requests_per_input.values()) == 1  # no SDK retry
    assert not server.successes_per_input


def test_5xx_server_error(server: FakeGeminiServer) -> None:
    server.faults = FaultConfig(rate_5xx=1.0, seed=3)
    client = make_client(server)
    codes = set()
    for i in range(8):
        with pytest.raises(errors.ServerError) as info:
            client.models.generate_content(model=MODEL, contents=f"x{i}")
        codes.add((info.value.code, info.value.status))
    assert codes <= {(500, "INTERNAL"), (503, "UNAVAILABLE")} and len(codes) == 2


def test_default_client_does_not_retry(server: FakeGeminiServer) -> None:
    server.faults = FaultConfig(rate_5xx=1.0)
    client = genai.Client(api_key="test-key", http_options=types.HttpOptions(
        base_url=server.base_url, api_version="v1beta", timeout=2000))
    with pytest.raises(errors.ServerError):
        client.models.generate_content(model=MODEL, contents="once")
    assert sum(server.requests_per_input.values()) == 1


def test_sdk_retries_when_configured(server: FakeGeminiServer) -> None:
    server.faults = FaultConfig(rate_5xx=1.0)
    fast = types.HttpRetryOptions(attempts=3, initial_delay=0.01, max_delay=0.01, jitter=0)
    client = make_client(server, retry=fast)
    with pytest.raises(errors.ServerError):
        client.models.generate_content(model=MODEL, contents="r")
    assert list(server.requests_per_input.values()) == [3]


def test_malformed_and_schema_violation(server: FakeGeminiServer) -> None:
    client = make_client(server)
    server.faults = FaultConfig(rate_malformed=1.0)
    resp = client.models.generate_content(model=MODEL, contents="m")
    with pytest.raises(json.JSONDecodeError):
        json.loads(resp.text)
    server.faults = FaultConfig(rate_schema_violation=1.0)
    resp = client.models.generate_content(
        model=MODEL, contents="s",
        config=types.GenerateContentConfig(response_mime_type="application/json"))
    assert json.loads(resp.text) == {}
    assert not server.successes_per_input


def test_timeout_fault(server: FakeGeminiServer) -> None:
    server.faults = FaultConfig(rate_timeout=1.0, timeout_sleep_s=1.0)
    client = make_client(server, timeout_ms=200)
    with pytest.raises(SYNC_TIMEOUT_EXC):
        client.models.generate_content(model=MODEL, contents="slow")

    async def go() -> None:
        try:
            await client.aio.models.generate_content(model=MODEL, contents="slow")
        finally:
            await client.aio.aclose()

    with pytest.raises(TimeoutError):
        asyncio.run(go())
    assert list(server.requests_per_input.values()) == [2]


def test_requests_per_input(server: FakeGeminiServer) -> None:
    client = make_client(server)
    for text in ("same", "same", "other"):
        client.models.generate_content(model=MODEL, contents=text)
    assert sorted(server.requests_per_input.values()) == [1, 2]
    assert server.requests_per_input == server.successes_per_input
    key_same = server.requests[0].input_key
    assert server.requests[1].input_key == key_same != server.requests[2].input_key
    server.reset_counts()
    assert not server.requests_per_input and not server.request_times


def test_rpm_quota(server: FakeGeminiServer) -> None:
    server.faults = FaultConfig(rpm_quota=3)
    client = make_client(server)
    for i in range(3):
        client.models.generate_content(model=MODEL, contents=f"q{i}")
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=MODEL, contents="q3")
    assert info.value.code == 429
    assert 55.0 < float(retry_delay(info.value).rstrip("s")) <= 60.0
    assert len(server.request_times) == 4 and sum(server.successes_per_input.values()) == 3


def test_seeded_faults_are_reproducible() -> None:
    def outcomes() -> list[int]:
        with FakeGeminiServer(faults=FaultConfig(rate_429=0.5, seed=7)) as srv:
            client, out = make_client(srv), []
            for i in range(10):
                try:
                    client.models.generate_content(model=MODEL, contents=f"s{i}")
                    out.append(200)
                except errors.ClientError as exc:
                    out.append(exc.code)
            return out

    first = outcomes()
    assert first == outcomes() and {200, 429} == set(first)


def test_unknown_route_404(server: FakeGeminiServer) -> None:
    url = f"{server.base_url}/v1beta/models/{MODEL}:countTokens"
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(urllib.request.Request(url, data=b"{}", method="POST"))
    assert info.value.code == 404
    assert json.loads(info.value.read())["error"]["status"] == "NOT_FOUND"


def test_sustained_and_peak_rpm(server: FakeGeminiServer) -> None:
    assert server.sustained_and_peak_rpm() == (0.0, 0.0)
    server.request_times.extend(float(t) for t in range(10))  # 1 request / s
    sustained, peak = server.sustained_and_peak_rpm(window_s=2.0)
    assert sustained == pytest.approx(60.0) and peak == pytest.approx(60.0)
    assert server.sustained_and_peak_rpm()[1] == pytest.approx(10.0)
