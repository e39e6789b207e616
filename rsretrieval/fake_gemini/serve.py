"""The fake Gemini server in the foreground: ``rsretrieval fake-gemini`` / ``python -m rsretrieval.fake_gemini``.

Rehearse a paid run without a key or a bill: start it, point ``generation.base_url`` at the URL it prints,
run the job with ``generation.backend=gemini`` and any ``GEMINI_API_KEY``. Ctrl-C or SIGTERM stops it and
prints what it served. Stdlib only.
"""

from __future__ import annotations

import argparse
import collections
import signal
import sys
import threading
from typing import Any

from rsretrieval.fake_gemini.protocol import FaultConfig, default_responder
from rsretrieval.fake_gemini.responders import task_responder
from rsretrieval.fake_gemini.server import FakeGeminiServer

DESCRIPTION = """A local stand-in for the Gemini REST API (generateContent and Batch mode) on HOST:PORT.

It accepts any API key and bills nothing. Answers are canned but schema-valid per generation task
(--responder tasks: text scenes = the caption's clauses, a fixed small graph and counts, one caption
per image) or an echo of the request (--responder echo). Faults can be injected: 429 with RetryInfo,
500/503, hangs, malformed or empty answers, a requests/min quota, latency.

  rsretrieval fake-gemini                       # http://127.0.0.1:8765
  rsretrieval fake-gemini --port 0 --fail-rate 0.2 --latency 0.3
  GEMINI_API_KEY=fake rsretrieval generate --config rayjobs/configs/quick.yaml --limit 8 \\
      --set generation.backend=gemini --set generation.base_url=http://127.0.0.1:8765
"""
RESPONDERS = {"tasks": task_responder, "echo": default_responder}


def add_fake_gemini_args(p: argparse.ArgumentParser) -> None:
    """Address, responder and fault knobs (:class:`FaultConfig`)."""
    d = FaultConfig()
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free port, printed)")
    p.add_argument("--responder", choices=sorted(RESPONDERS), default="tasks",
                   help="tasks: schema-valid canned answers per generation task (default); echo: the first text")
    p.add_argument("--latency", type=float, default=d.latency_s, metavar="S", help="seconds before every answer")
    p.add_argument("--fail-rate", type=float, default=0.0, metavar="P",
                   help="share of requests answered 429 or 5xx, half each (the --rate-* flags override a half)")
    p.add_argument("--rate-429", type=float, default=None, metavar="P", help="share answered 429 with RetryInfo")
    p.add_argument("--retry-delay", type=float, default=d.retry_delay_s, metavar="S", help="retryDelay of those 429s")
    p.add_argument("--rate-5xx", type=float, default=None, metavar="P", help="share answered 500 or 503")
    p.add_argument("--rate-timeout", type=float, default=d.rate_timeout, metavar="P", help="share that hang")
    p.add_argument("--timeout-sleep", type=float, default=d.timeout_sleep_s, metavar="S", help="how long they hang")
    p.add_argument("--rate-malformed", type=float, default=d.rate_malformed, metavar="P",
                   help="share answered 200 with truncated JSON")
    p.add_argument("--rate-schema-violation", type=float, default=d.rate_schema_violation, metavar="P",
                   help="share answered 200 with {}")
    p.add_argument("--rpm-quota", type=int, default=d.rpm_quota, metavar="N",
                   help="requests per sliding minute; more get 429 (default: no quota)")
    p.add_argument("--batch-polls", type=int, default=d.batch_polls, metavar="N", help="polls before a batch job ends")
    p.add_argument("--batch-seconds", type=float, default=d.batch_seconds, metavar="S",
                   help="seconds before a batch job ends")
    p.add_argument("--batch-state", default=d.batch_state, help="how batch jobs end (default BATCH_STATE_SUCCEEDED)")
    p.add_argument("--rate-batch-item-error", type=float, default=d.rate_batch_item_error, metavar="P",
                   help="share of batch items answered with an error")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the fault draws")


def fault_config(args: argparse.Namespace) -> FaultConfig:
    """The :class:`FaultConfig` the arguments describe."""
    half = args.fail_rate / 2
    return FaultConfig(rate_429=half if args.rate_429 is None else args.rate_429, retry_delay_s=args.retry_delay,
                       rate_5xx=half if args.rate_5xx is None else args.rate_5xx, rate_timeout=args.rate_timeout,
                       timeout_sleep_s=args.timeout_sleep, rate_malformed=args.rate_malformed,
                       rate_schema_violation=args.rate_schema_violation, rpm_quota=args.rpm_quota,
                       latency_s=args.latency, seed=args.seed, batch_polls=args.batch_polls,
                       batch_seconds=args.batch_seconds, batch_state=args.batch_state,
                       rate_batch_item_error=args.rate_batch_item_error)


def banner(url: str) -> str:
    """What the server prints once it listens: its URL (first line) and how to point rsretrieval at it."""
    return (f"fake Gemini server listening on {url}\n"
            "any API key is accepted and nothing is billed; point rsretrieval at it with\n"
            "  export GEMINI_API_KEY=fake-key   # any value: the client wants one\n"
            f"  --set generation.backend=gemini --set generation.base_url={url}\n"
            "Ctrl-C or SIGTERM stops it")


def served_summary(server: FakeGeminiServer) -> dict[str, int]:
    """Online requests per outcome (ok, 429, 500, 503, timeout, malformed, schema, quota) and batch jobs."""
    counts = collections.Counter(event[3] for event in list(server.events))
    return {"requests": sum(counts.values()), **dict(sorted(counts.items())), "batches": server.batches_created}


def serve(args: argparse.Namespace, stop: threading.Event | None = None) -> dict[str, int]:
    """Serve until SIGINT / SIGTERM (or ``stop`` is set); returns :func:`served_summary`."""
    stop = stop or threading.Event()
    server = FakeGeminiServer(RESPONDERS[args.responder], fault_config(args), host=args.host, port=args.port)
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        try:
            server.start()
        except OSError as e:  # the port is taken, the address is not ours, ...
            print(f"error: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
            sys.exit(2)
        print(banner(server.base_url), flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    summary = served_summary(server)
    print("stopped; served " + ", ".join(f"{k} {v}" for k, v in summary.items()), flush=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    """``python -m rsretrieval.fake_gemini``: exit status 0 after a clean stop."""
    p = argparse.ArgumentParser(prog="python -m rsretrieval.fake_gemini", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_fake_gemini_args(p)
    serve(p.parse_args(sys.argv[1:] if argv is None else argv))
    return 0
