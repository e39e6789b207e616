"""A local fake of the Gemini REST ``generateContent`` API, for tests.

The real ``google-genai`` client can be pointed at it with
``types.HttpOptions(base_url=server.base_url, api_version="v1beta")``.
It answers ``POST /{v1|v1beta}/models/{model}:generateContent`` with a body
shaped like Google's, built from a pluggable *responder* (a function from a
:class:`FakeRequest` to the response text), and can inject seeded faults
(429 with ``RetryInfo``, 500/503, hangs, malformed or empty-object answers, an
RPM quota).  It counts requests per input and records request times so tests
can check retries, de-duplication and rate limiting.  Stdlib only.

It also speaks the Developer API's Batch mode with inline requests, as ``client.batches`` sends it:
``POST /{v}/models/{model}:batchGenerateContent`` (creates ``batches/<id>``), ``GET /{v}/batches/<id>``
(each GET is a poll; the job completes after ``FaultConfig.batch_polls`` polls and
``batch_seconds`` seconds, ending in ``batch_state``), ``GET /{v}/batches`` (paged list),
``POST /{v}/batches/<id>:cancel`` and ``DELETE /{v}/batches/<id>``. Every inlined request is
answered by the same responder and counted in ``requests_per_input`` / ``successes_per_input``
like an online request, once, when its batch succeeds; ``batches_created`` counts jobs.
"""

from __future__ import annotations

import collections
import hashlib
import json
import random
import re
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs

__all__ = ["FakeRequest", "FaultConfig", "FakeGeminiServer"]

_ROUTE = re.compile(r"^/(v1|v1beta)/models/([A-Za-z0-9._\-]+):generateContent$")
_BATCH_CREATE = re.compile(r"^/(v1|v1beta)/models/([A-Za-z0-9._\-]+):batchGenerateContent$")
_BATCHES = re.compile(r"^/(v1|v1beta)/batches(?:/([A-Za-z0-9._\-]+))?(:cancel)?$")
BATCH_TERMINAL = ("BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED")
_STATUS_TEXT = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
                500: "INTERNAL", 503: "UNAVAILABLE"}
_MESSAGES = {429: "Resource has been exhausted (e.g. check quota).",
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
    err: dict[str, Any] = {"code": code, "message": message or _MESSAGES.get(code, "Error"),
                           "status": _STATUS_TEXT.get(code, "UNKNOWN")}
    if retry_delay_s is not None:
        err["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                           "retryDelay": format_duration(retry_delay_s)}]
    return {"error": err}


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


class FakeGeminiServer:
    """Threaded local HTTP server imitating Gemini ``generateContent``."""

    def __init__(self, responder: Callable[[FakeRequest], str] | None = None,
                 faults: FaultConfig | None = None) -> None:
        self.responder: Callable[[FakeRequest], str] = responder or default_responder
        self.faults: FaultConfig = faults or FaultConfig()
        self.requests_per_input: collections.Counter[str] = collections.Counter()
        self.successes_per_input: collections.Counter[str] = collections.Counter()
        self.request_times: list[float] = []
        self.requests: list[FakeRequest] = []
        # (arrived, answered, input_key, outcome, retry_delay_s) per request, in arrival order
        self.events: list[tuple[float, float, str, str, float]] = []
        self._lock = threading.Lock()
        self._rng, self._rng_seed = random.Random(self.faults.seed), self.faults.seed
        self._admitted: collections.deque[float] = collections.deque()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None  # runs serve_forever
        self.base_url: str = ""
        self.batches: dict[str, dict[str, Any]] = {}  # id -> job (see _batch_create)
        self.batches_created = 0
        self._batch_lock = threading.Lock()  # polls, list, cancel (held while a job completes)

    def start(self) -> FakeGeminiServer:
        """Bind 127.0.0.1 on a free port and serve in a daemon thread."""
        handler = type("_Handler", (_Handler,), {"fake": self})
        self._stopping.clear()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        name="fake-gemini", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; wakes handlers that are sleeping."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeGeminiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset_counts(self) -> None:
        """Clear counters, request log and the RPM-quota window."""
        with self._lock:
            self.requests_per_input.clear()
            self.successes_per_input.clear()
            self.request_times.clear()
            self.requests.clear()
            self.events.clear()
            self._admitted.clear()

    def sustained_and_peak_rpm(self, window_s: float = 60.0) -> tuple[float, float]:
        """(mean rate between first and last request, max count in any sliding
        ``window_s`` window scaled to per minute), both in requests/minute."""
        with self._lock:
            times = sorted(self.request_times)
        if not times:
            return 0.0, 0.0
        span = times[-1] - times[0]
        sustained = (len(times) - 1) / span * 60.0 if span > 0 else 0.0
        peak, j = 0, 0
        for i, t in enumerate(times):
            while j < len(times) and times[j] < t + window_s:
                j += 1
            peak = max(peak, j - i)
        return sustained, peak * 60.0 / window_s

    def retry_gaps(self) -> list[tuple[float, float]]:
        """(seconds from a 429 answer to the same input's next request, the retryDelay that 429
        asked for) for every 429 that was followed by a retry."""
        with self._lock:
            events = list(self.events)
        last_429: dict[str, tuple[float, float]] = {}
        gaps = []
        for arrived, answered, key, outcome, delay in sorted(events):
            if key in last_429:
                sent_at, asked = last_429.pop(key)
                gaps.append((arrived - sent_at, asked))
            if outcome in ("quota", "429"):
                last_429[key] = (answered, delay)
        return gaps

    def _log(self, arrived: float, key: str, outcome: str, delay: float = 0.0) -> None:
        with self._lock:
            self.events.append((arrived, time.monotonic(), key, outcome, delay))

    def _draw_fault(self, now: float, texts: list[str] | None = None) -> tuple[str | None, float]:
        """Pick this request's fault (under the lock); returns (kind, retry_delay)."""
        f = self.faults
        for needle, kind in f.poison.items():
            if any(needle in t for t in texts or ()):
                return ("500" if kind == "5xx" else kind), 0.0
        if f.seed != self._rng_seed:
            self._rng, self._rng_seed = random.Random(f.seed), f.seed
        if f.rpm_quota is not None:
            while self._admitted and self._admitted[0] <= now - 60.0:
                self._admitted.popleft()
            if len(self._admitted) >= f.rpm_quota:
                wait = self._admitted[0] + 60.0 - now if self._admitted else 60.0
                return "quota", wait
            self._admitted.append(now)
        for kind, rate in (("429", f.rate_429), ("5xx", f.rate_5xx),
                           ("timeout", f.rate_timeout), ("malformed", f.rate_malformed),
                           ("schema", f.rate_schema_violation)):
            if rate > 0 and self._rng.random() < rate:
                if kind == "5xx":
                    return ("500" if self._rng.random() < 0.5 else "503"), 0.0
                return kind, f.retry_delay_s
        return None, 0.0

    def _handle(self, h: _Handler, model: str, version: str, body: dict[str, Any]) -> None:
        req = parse_request(model, version, body)
        now = time.monotonic()
        with self._lock:
            self.requests_per_input[req.input_key] += 1
            self.request_times.append(now)
            self.requests.append(req)
            fault, delay = self._draw_fault(now, req.texts)
            latency, hang = self.faults.latency_s, self.faults.timeout_sleep_s
        if latency > 0 and self._stopping.wait(latency):
            return
        if fault in ("quota", "429"):
            self._log(now, req.input_key, fault, delay)  # before the answer: the client may retry at once
            h.send_json(429, error_body(429, retry_delay_s=delay))
            return
        self._log(now, req.input_key, fault or "ok")
        if fault in ("500", "503"):
            h.send_json(int(fault), error_body(int(fault)))
            return
        if fault == "timeout" and (self._stopping.wait(hang) or h.peer_closed()):
            return  # the client gave up: answer nothing, count nothing
        if fault in ("malformed", "schema"):  # 200, but the text is not JSON / is just {}
            bad = '{"truncated": [1, 2, ' if fault == "malformed" else "{}"
            h.send_json(200, success_body(req, bad))
            return
        try:
            text = self.responder(req)
        except Exception as exc:  # a broken responder is a server error
            h.send_json(500, error_body(500, f"responder failed: {exc!r}"))
            return
        # Counted before the write: the client may read the answer (and a test the counter)
        # before this thread runs again. A write that fails takes the count back.
        with self._lock:
            self.successes_per_input[req.input_key] += 1
        if not h.send_json(200, success_body(req, text)):
            with self._lock:
                self.successes_per_input[req.input_key] -= 1
                if self.successes_per_input[req.input_key] <= 0:
                    del self.successes_per_input[req.input_key]

    # --- Batch mode (Developer API, inline requests) -------------------------------------------

    def _batch_op(self, job: dict[str, Any], with_output: bool = True) -> dict[str, Any]:
        """A job as the API returns it: a long-running Operation whose ``metadata`` is the batch."""
        meta: dict[str, Any] = {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch",
            "name": job["name"], "model": f"models/{job['model']}", "displayName": job["display_name"],
            "createTime": _iso(job["created"]), "updateTime": _iso(job["updated"]), "state": job["state"],
            "batchStats": job["stats"]}
        done = job["state"] in BATCH_TERMINAL
        if done:
            meta["endTime"] = _iso(job["updated"])
        op: dict[str, Any] = {"name": job["name"], "metadata": meta, "done": done}
        if with_output and job["output"] is not None:
            meta["output"] = {"inlinedResponses": {"inlinedResponses": job["output"]}}
        return op

    def _batch_create(self, h: _Handler, model: str, version: str, body: dict[str, Any]) -> None:
        batch = body.get("batch") if isinstance(body.get("batch"), dict) else {}
        items = ((batch.get("inputConfig") or {}).get("requests") or {}).get("requests")
        if not isinstance(items, list) or not items:
            h.send_json(400, error_body(400, "batch.inputConfig.requests.requests must list inline requests"))
            return
        with self._batch_lock:
            self.batches_created += 1
            bid, now = f"fake{self.batches_created:06d}", time.time()
            job = {"id": bid, "name": f"batches/{bid}", "model": model, "api_version": version,
                   "display_name": batch.get("displayName", ""), "requests": items, "polls": 0,
                   "state": "BATCH_STATE_PENDING", "created": now, "updated": now, "output": None,
                   "stats": {"requestCount": str(len(items)), "pendingRequestCount": str(len(items))}}
            self.batches[bid] = job
            op = self._batch_op(job)
        h.send_json(200, op)

    def _batch_get(self, h: _Handler, bid: str) -> None:
        """One poll: the job completes (its requests are answered) once it is due."""
        with self._batch_lock:
            job = self.batches.get(bid)
            if job is None:
                h.send_json(404, error_body(404, f"batches/{bid} not found"))
                return
            job["polls"] += 1
            f = self.faults
            if job["state"] not in BATCH_TERMINAL:
                if job["polls"] >= f.batch_polls and time.time() - job["created"] >= f.batch_seconds:
                    self._batch_complete(job, f.batch_state)
                else:
                    job["state"], job["updated"] = "BATCH_STATE_RUNNING", time.time()
            op = self._batch_op(job)
        h.send_json(200, op)

    def _batch_complete(self, job: dict[str, Any], state: str) -> None:
        out = [self._batch_item(job, item) for item in job["requests"]] if state == "BATCH_STATE_SUCCEEDED" else None
        n, ok = len(job["requests"]), sum("response" in r for r in out or [])
        job.update(state=state, updated=time.time(), output=out, stats={
            "requestCount": str(n), "successfulRequestCount": str(ok), "failedRequestCount": str(n - ok)})

    def _batch_item(self, job: dict[str, Any], item: Any) -> dict[str, Any]:
        """Answer one inlined request like an online one (same responder, input key and counters)."""
        item = item if isinstance(item, dict) else {}
        req = parse_request(job["model"], job["api_version"], item.get("request") or {})
        meta = {"metadata": item["metadata"]} if "metadata" in item else {}
        with self._lock:
            self.requests_per_input[req.input_key] += 1
            self.requests.append(req)
            fault = self._draw_item_fault()
        if fault == "error":
            return {"error": {"code": 13, "message": _MESSAGES[500]}, **meta}
        if fault in ("malformed", "schema"):
            return {"response": success_body(req, '{"truncated": [1, 2, ' if fault == "malformed" else "{}"), **meta}
        try:
            text = self.responder(req)
        except Exception as exc:
            return {"error": {"code": 13, "message": f"responder failed: {exc!r}"}, **meta}
        with self._lock:
            self.successes_per_input[req.input_key] += 1
        return {"response": success_body(req, text), **meta}

    def _draw_item_fault(self) -> str | None:
        f = self.faults
        if f.seed != self._rng_seed:
            self._rng, self._rng_seed = random.Random(f.seed), f.seed
        for kind, rate in (("error", f.rate_batch_item_error), ("malformed", f.rate_malformed),
                           ("schema", f.rate_schema_violation)):
            if rate > 0 and self._rng.random() < rate:
                return kind
        return None

    def _batch_list(self, h: _Handler, query: str) -> None:
        q = parse_qs(query)
        size, start = int(q.get("pageSize", ["50"])[0]), int(q.get("pageToken", ["0"])[0] or 0)
        with self._batch_lock:
            jobs = list(reversed(self.batches.values()))  # newest first
            page = [self._batch_op(j, with_output=False) for j in jobs[start:start + size]]
        body: dict[str, Any] = {"operations": page}
        if start + size < len(jobs):
            body["nextPageToken"] = str(start + size)
        h.send_json(200, body)

    def _batch_cancel_or_delete(self, h: _Handler, bid: str, delete: bool) -> None:
        with self._batch_lock:
            job = self.batches.get(bid)
            if job is None:
                h.send_json(404, error_body(404, f"batches/{bid} not found"))
                return
            if delete:
                del self.batches[bid]
            elif job["state"] not in BATCH_TERMINAL:
                job.update(state="BATCH_STATE_CANCELLED", updated=time.time())
        h.send_json(200, {})


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler; ``fake`` is set on a per-server subclass."""

    fake: FakeGeminiServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr log."""

    def send_json(self, code: int, payload: dict[str, Any]) -> bool:
        """Write a JSON answer; False if the client has gone away."""
        data = json.dumps(payload).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
            return True
        except OSError:
            self.close_connection = True
            return False

    def peer_closed(self) -> bool:
        """True if the client closed its end (e.g. after a client-side timeout)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        batches = _BATCHES.match(path)
        if batches is not None and not batches.group(3):
            if batches.group(2):
                self.fake._batch_get(self, batches.group(2))
            else:
                self.fake._batch_list(self, query)
            return
        self.send_json(404, error_body(404, f"Unknown route: GET {self.path}"))

    def do_DELETE(self) -> None:
        batches = _BATCHES.match(self.path.split("?", 1)[0])
        if batches is None or not batches.group(2) or batches.group(3):
            self.send_json(404, error_body(404, f"Unknown route: DELETE {self.path}"))
            return
        self.fake._batch_cancel_or_delete(self, batches.group(2), delete=True)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        match, create, batches = _ROUTE.match(path), _BATCH_CREATE.match(path), _BATCHES.match(path)
        if batches is not None and batches.group(2) and batches.group(3):
            self.fake._batch_cancel_or_delete(self, batches.group(2), delete=False)
            return
        if match is None and create is None:
            self.send_json(404, error_body(404, f"Unknown route: POST {self.path}"))
            return
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError("body is not a JSON object")
        except ValueError as exc:
            self.send_json(400, error_body(400, f"Invalid JSON: {exc}"))
            return
        if create is not None:
            self.fake._batch_create(self, create.group(2), create.group(1), body)
            return
        self.fake._handle(self, match.group(2), match.group(1), body)
