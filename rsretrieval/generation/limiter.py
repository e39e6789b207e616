"""Request and token pacing: a reservation pacer that one process or a whole cluster shares.

``Pacer.reserve(tokens)`` books the next free slot for one request of ``tokens`` tokens and
returns how long the caller must wait before sending it. Slots are spaced 60/rpm seconds apart and
a request of T tokens moves the token clock by 60 T / tpm, so over any minute at most ``rpm``
requests and about ``tpm`` tokens go out, with no burst above the quota. In one process
:class:`LocalLimiter` wraps a Pacer; on Ray, ``rsretrieval.pipelines.stages.generation`` runs one Pacer in
a named actor that every generation actor asks, so the quota holds for the cluster, not per actor.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Protocol


class Pacer:
    """Books request slots against requests/min and tokens/min quotas (thread-safe)."""

    def __init__(self, requests_per_minute: int, tokens_per_minute: int) -> None:
        self.req_interval = 60.0 / requests_per_minute
        self.tok_interval = 60.0 / tokens_per_minute
        self._next_req = 0.0
        self._next_tok = 0.0
        self._lock = threading.Lock()
        self.granted = 0

    def reserve(self, tokens: int, now: float | None = None) -> float:
        """Seconds to wait before sending one request of ``tokens`` tokens (0 = now)."""
        with self._lock:
            now = time.monotonic() if now is None else now
            slot = max(now, self._next_req, self._next_tok)
            self._next_req = slot + self.req_interval
            self._next_tok = slot + tokens * self.tok_interval
            self.granted += 1
            return slot - now


class RateLimiter(Protocol):
    async def acquire(self, tokens: int) -> None: ...


class LocalLimiter:
    """A Pacer for the requests of one process."""

    def __init__(self, requests_per_minute: int, tokens_per_minute: int) -> None:
        self.pacer = Pacer(requests_per_minute, tokens_per_minute)

    async def acquire(self, tokens: int) -> None:
        wait = self.pacer.reserve(tokens)
        if wait > 0:
            await asyncio.sleep(wait)
