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
import json
import random
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from rsretrieval.fake_gemini.batch import BatchModeMixin
from rsretrieval.fake_gemini.protocol import (BATCH_CREATE_ROUTE, BATCHES_ROUTE, GENERATE_ROUTE, FakeRequest, FaultConfig,
                                                  default_responder, error_body, format_duration, parse_request,
                                                  success_body)

__all__ = ["FakeRequest", "FaultConfig", "FakeGeminiServer", "default_responder", "error_body", "format_duration",
           "parse_request", "success_body"]

class FakeGeminiServer(BatchModeMixin):
    """Threaded local HTTP server imitating Gemini ``generateContent``."""

    def __init__(self, responder: Callable[[FakeRequest], str] | None = None,
                 faults: FaultConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port  # port 0: a free one (see base_url once started)
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
        """Bind ``host``:``port`` (default 127.0.0.1, a free port) and serve in a daemon thread."""
        handler = type("_Handler", (_Handler,), {"fake": self})
        self._stopping.clear()
        self._httpd = ThreadingHTTPServer((self.host, self.port), handler)
        self._httpd.daemon_threads = True
        shown = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host  # a wildcard bind: reach it locally
        self.base_url = f"http://{shown}:{self._httpd.server_address[1]}"
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
        batches = BATCHES_ROUTE.match(path)
        if batches is not None and not batches.group(3):
            if batches.group(2):
                self.fake._batch_get(self, batches.group(2))
            else:
                self.fake._batch_list(self, query)
            return
        self.send_json(404, error_body(404, f"Unknown route: GET {self.path}"))

    def do_DELETE(self) -> None:
        batches = BATCHES_ROUTE.match(self.path.split("?", 1)[0])
        if batches is None or not batches.group(2) or batches.group(3):
            self.send_json(404, error_body(404, f"Unknown route: DELETE {self.path}"))
            return
        self.fake._batch_cancel_or_delete(self, batches.group(2), delete=True)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        match, create, batches = GENERATE_ROUTE.match(path), BATCH_CREATE_ROUTE.match(path), BATCHES_ROUTE.match(path)
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
