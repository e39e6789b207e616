"""Wire format of the fake Gemini server: routes, request parsing, success and error bodies, faults.

Shared by the online handler (:mod:`rsretrieval.fake_gemini.server`) and Batch mode
(:mod:`rsretrieval.fake_gemini.batch`). Stdlib only.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

GENERATE_ROUTE = re.compile(r"^/(v1|v1beta)/models/([A-Za-z0-9._\-]+):generateContent$")
BATCH_CREATE_ROUTE = re.compile(r"^/(v1|v1beta)/models/([A-Za-z0-9._\-]+):batchGenerateContent$")
BATCHES_ROUTE = re.compile(r"^/(v1|v1beta)/batches(?:/([A-Za-z0-9._\-]+))?(:cancel)?$")
BATCH_TERMINAL = ("BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED")
_STATUS_TEXT = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
                500: "INTERNAL", 503: "UNAVAILABLE"}
STATUS_MESSAGES = {429: "Resource has been exhausted (e.g. check quota).",
             500: "An internal error has occurred.", 503: "The model is overloaded."}
IMAGE_TOKENS = 258


@dataclass
class FakeRequest:
    """One parsed ``generateContent`` request."""

    model: str
    api_version: str
    body: dict[str, Any]
    texts: list[str]
    n_images: int
    system_instruction: str | None
    input_key: str


@dataclass
class FaultConfig:
    """Fault-injection settings; probabilities are drawn per request."""

    rate_429: float = 0.0
    retry_delay_s: float = 1.0
    rate_5xx: float = 0.0
    rate_timeout: float = 0.0
    timeout_sleep_s: float = 5.0
    rate_malformed: float = 0.0
    rate_schema_violation: float = 0.0
    rpm_quota: int | None = None
    latency_s: float = 0.0
    seed: int = 0
    batch_polls: int = 1  # GETs of a batch job before it completes
    batch_seconds: float = 0.0  # and seconds since its creation
    batch_state: str = "BATCH_STATE_SUCCEEDED"  # how batch jobs end (FAILED / CANCELLED / EXPIRED to test)
    rate_batch_item_error: float = 0.0  # an inlined request answered with an error instead of a response
    # poison inputs: a request whose text contains the key always gets that fault ("5xx" | "malformed")
    poison: dict[str, str] = field(default_factory=dict)


def _parts(contents: Any) -> list[dict[str, Any]]:
    """All part dicts of a ``contents`` value (list of Content, or one Content)."""
    if isinstance(contents, dict):
        contents = [contents]
    out: list[dict[str, Any]] = []
    for content in contents if isinstance(contents, list) else []:
        if isinstance(content, dict):
            out.extend(p for p in content.get("parts") or [] if isinstance(p, dict))
    return out


def parse_request(model: str, api_version: str, body: dict[str, Any]) -> FakeRequest:
    """Build a :class:`FakeRequest` from a decoded request body."""
    contents = body.get("contents", [])
    parts = _parts(contents)
    texts = [p["text"] for p in parts if isinstance(p.get("text"), str)]
    n_images = sum(1 for p in parts if "inline_data" in p or "inlineData" in p)
    sys_raw = body.get("systemInstruction", body.get("system_instruction"))
    sys_texts = [p["text"] for p in _parts(sys_raw) if isinstance(p.get("text"), str)]
    key = hashlib.sha256(json.dumps(contents, sort_keys=True).encode()).hexdigest()
    return FakeRequest(model, api_version, body, texts, n_images,
                       "\n".join(sys_texts) if sys_texts else None, key)


def default_responder(req: FakeRequest) -> str:
    """Echo the first 50 characters of the first text part as JSON."""
    return json.dumps({"echo": req.texts[0][:50] if req.texts else ""})


def format_duration(seconds: float) -> str:
    """Format seconds as a protobuf Duration string, e.g. ``"1s"``, ``"0.5s"``."""
    s = f"{max(seconds, 0.0):.3f}".rstrip("0").rstrip(".")
    return f"{s}s"


def success_body(req: FakeRequest, text: str) -> dict[str, Any]:
    """The JSON body of a successful ``generateContent`` answer."""
    p = sum(len(t) // 4 + 1 for t in req.texts) + IMAGE_TOKENS * req.n_images
    c = len(text) // 4 + 1
    return {"candidates": [{"content": {"parts": [{"text": text}], "role": "model"},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": p, "candidatesTokenCount": c,
                              "totalTokenCount": p + c},
            "modelVersion": req.model}


def error_body(code: int, message: str | None = None,
               retry_delay_s: float | None = None) -> dict[str, Any]:
    """A Google-style error body; 429s may carry a ``RetryInfo`` detail."""
    err: dict[str, Any] = {"code": code, "message": message or STATUS_MESSAGES.get(code, "Error"),
                           "status": _STATUS_TEXT.get(code, "UNKNOWN")}
    if retry_delay_s is not None:
        err["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                           "retryDelay": format_duration(retry_delay_s)}]
    return {"error": err}


def iso_time(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"
