"""Gemini backend: the real google-genai async client with paced, retried, validated requests.

* The key comes from ``GEMINI_API_KEY`` or ``GOOGLE_API_KEY`` only (never from a config file).
* The SDK's own retries are switched off (they ignore the server's ``RetryInfo.retryDelay``); here
  429/408/5xx, timeouts and transport errors are retried up to ``max_attempts`` with exponential
  backoff and full jitter, and a 429's ``retryDelay`` is honoured as the minimum wait.
* An answer that fails validation is re-asked up to ``max_reasks`` times, then recorded as
  ``failed`` with the reason; it was paid, so it is not requested again unless asked.
* 401/403 (a wrong or missing key) stop the run: recording every row as failed would be wrong.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import time
from dataclasses import dataclass
from typing import Any

from rsretrieval._lazy import lazy_import
from rsretrieval.generation.config import GenerationConfig
from rsretrieval.generation.limiter import RateLimiter
from rsretrieval.generation.store import GenerationRecord, input_hash, record_key
from rsretrieval.generation.tasks import GenerationTask, InvalidResponse, to_json

RETRYABLE_CODES = {408, 429, 500, 502, 503, 504}


class GenerationAuthError(RuntimeError):
    """The API refused the key: stop, nothing is recorded."""


@dataclass
class GenerationInput:
    """One input of a task: an image (bytes) and/or text; ``extra_text`` rides along (step-1 counts)."""

    input_id: str
    text: str | None = None
    image_bytes: bytes | None = None
    mime_type: str = "image/png"
    extra_text: str | None = None

    def hash(self) -> str:
        parts = [self.image_bytes or b"", (self.text or "").encode(), (self.extra_text or "").encode()]
        return input_hash(b"\x00".join(input_hash(p).encode() for p in parts))

    def estimated_tokens(self) -> int:
        return 258 * bool(self.image_bytes) + (len(self.text or "") + len(self.extra_text or "")) // 4 + 1


def api_key_from_env() -> str:
    key = os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY")
    if not key:
        raise GenerationAuthError(
            "generation.backend is 'gemini' but neither GEMINI_API_KEY nor GOOGLE_API_KEY is set; "
            "export one (keys are never read from config files), or use generation.backend=offline")
    return key


def retry_delay_hint(exc: BaseException) -> float | None:
    """Seconds from a 429's ``RetryInfo.retryDelay`` (e.g. '1.5s'), wherever the SDK put it."""
    found = re.search(r'"?retryDelay"?\s*[:=]\s*"?([0-9.]+)s', json.dumps(getattr(exc, "details", None), default=str))
    if not found:
        found = re.search(r"retryDelay'?\"?\s*[:=]\s*'?\"?([0-9.]+)s", str(exc))
    return float(found.group(1)) if found else None


def transport_errors() -> tuple[type[BaseException], ...]:
    """Timeouts and connection failures of the SDK's async transport (aiohttp; the built-in
    TimeoutError on timeouts), plus OSError for refused connections."""
    out: list[type[BaseException]] = [TimeoutError, asyncio.TimeoutError, OSError]
    try:
        import aiohttp

        out.append(aiohttp.ClientError)
    except ImportError:
        pass
    return tuple(out)


def http_status(exc: BaseException) -> int | None:
    code = getattr(exc, "code", None)
    return code if isinstance(code, int) else None


def request_parts(types: Any, task: GenerationTask, inp: GenerationInput) -> tuple[list[Any], Any]:
    """(contents, config) of one request: image part, then text parts; the task's system prompt and
    JSON schema. Online and batch requests are built here, so they are the same request."""
    contents: list[Any] = []
    if inp.image_bytes is not None:
        contents.append(types.Part.from_bytes(data=inp.image_bytes, mime_type=inp.mime_type))
    for text in (inp.text, inp.extra_text):
        if text:
            contents.append(types.Part.from_text(text=text))
    config = types.GenerateContentConfig(
        system_instruction=task.system_prompt,
        response_mime_type="application/json" if task.wire_schema else None,
        response_schema=task.wire_schema)
    return contents, config


class GeminiGenerator:
    """``await generate(task, input)`` -> a :class:`GenerationRecord` (ok or failed), never raises
    for a per-row problem."""

    def __init__(self, cfg: GenerationConfig, limiter: RateLimiter, api_key: str | None = None) -> None:
        genai = lazy_import("google.genai")
        types = lazy_import("google.genai.types")
        self.cfg, self.limiter, self.types = cfg, limiter, types
        self.rng = random.Random(cfg.seed)
        http = types.HttpOptions(base_url=cfg.base_url, api_version=cfg.api_version,
                                 timeout=int(cfg.timeout_s * 1000), retry_options=types.HttpRetryOptions(attempts=1))
        self.client = genai.Client(api_key=api_key or api_key_from_env(), http_options=http)
        self.name = cfg.model

    async def aclose(self) -> None:
        """Close the async HTTP session (else aiohttp warns about an unclosed session)."""
        await self.client.aio.aclose()

    def _request(self, task: GenerationTask, inp: GenerationInput) -> tuple[list[Any], Any]:
        return request_parts(self.types, task, inp)

    def _backoff(self, failures: int, hint: float | None) -> float:
        jitter = self.rng.uniform(0, min(self.cfg.backoff_max_s, self.cfg.backoff_base_s * 2 ** (failures - 1)))
        return max(hint or 0.0, jitter)

    async def generate(self, task: GenerationTask, inp: GenerationInput) -> GenerationRecord:
        errors = lazy_import("google.genai.errors")
        in_hash = inp.hash()
        rec = GenerationRecord(key=record_key(task.name, self.cfg.model, task.prompt_version, in_hash),
                               task=task.name, model=self.cfg.model, prompt_version=task.prompt_version,
                               input_hash=in_hash, input_id=inp.input_id, status="failed",
                               generator=f"{self.cfg.model}@{task.prompt_version}")
        contents, config = self._request(task, inp)
        failures = reasks = 0
        t0 = time.perf_counter()
        while True:
            await self.limiter.acquire(inp.estimated_tokens() + self.cfg.estimated_output_tokens)
            rec.calls += 1
            try:
                resp = await asyncio.wait_for(
                    self.client.aio.models.generate_content(model=self.cfg.model, contents=contents, config=config),
                    timeout=self.cfg.timeout_s)
            except (errors.APIError, *transport_errors()) as exc:
                code = http_status(exc)
                if code in (401, 403):
                    raise GenerationAuthError(f"Gemini refused the API key ({code}): {exc}") from exc
                retryable = code is None or code in RETRYABLE_CODES
                failures += 1
                if not retryable or failures >= self.cfg.max_attempts:
                    rec.error = f"{type(exc).__name__} {code or ''}: {str(exc)[:300]} (after {failures} attempts)"
                    break
                await asyncio.sleep(self._backoff(failures, retry_delay_hint(exc) if code == 429 else None))
                continue
            usage = resp.usage_metadata
            rec.tokens_in += (usage.prompt_token_count or 0) if usage else 0
            rec.tokens_out += (usage.candidates_token_count or 0) if usage else 0
            rec.raw_text = resp.text
            try:
                rec.parsed = to_json(task.parse(resp.text))
                rec.status, rec.error = "ok", None
                break
            except InvalidResponse as exc:
                rec.error = f"invalid answer: {exc}"
                if reasks >= self.cfg.max_reasks:
                    rec.error += f" (after {reasks} re-asks)"
                    break
                reasks += 1
        rec.latency_s = time.perf_counter() - t0
        return rec
