"""Append-only store of generation responses: paid work is written as it arrives, never lost.

Layout: ``<root>/<task>/part-<host>-<pid>-<uuid>.jsonl``, one file per writer (a Ray actor, the
driver), one JSON record per line, flushed and fsync'ed per record, so a killed worker loses at
most the request in flight. Readers merge every part and ignore a torn last line. A record's key
is ``sha256(task, model, prompt version, input hash)``; a key with an ``ok`` record is done and is
never requested again. A ``failed`` record whose answers never validated was paid too: it is kept and
re-requested only when the caller asks (``retry_failed``); one that never got an answer (attempts
exhausted) cost nothing and is tried again on the next run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal

log = logging.getLogger(__name__)


def input_hash(payload: bytes | str) -> str:
    """sha256 of what is sent about one input (image bytes, caption text, step-1 counts)."""
    data = payload.encode() if isinstance(payload, str) else payload
    return hashlib.sha256(data).hexdigest()


def record_key(task: str, model: str, prompt_version: str, in_hash: str) -> str:
    return hashlib.sha256(f"{task}|{model}|{prompt_version}|{in_hash}".encode()).hexdigest()[:32]


@dataclass
class GenerationRecord:
    """One input's outcome: the answer (raw and parsed) or the reason it failed, and its cost."""

    key: str
    task: str
    model: str
    prompt_version: str
    input_hash: str
    input_id: str
    status: Literal["ok", "failed"]
    raw_text: str | None = None
    parsed: str | None = None  # JSON of the validated object
    error: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    calls: int = 0  # HTTP requests made for this input (retries and re-asks included)
    latency_s: float = 0.0
    generator: str = ""  # e.g. "gemini-2.5-flash@A.1.3.v1" or "heuristic@v1 (offline)"
    created_at: float = field(default_factory=time.time)

    @property
    def paid(self) -> bool:
        """An answer came back (tokens were billed), whether or not it validated."""
        return self.raw_text is not None or self.tokens_in > 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


class ResponseStore:
    """Append-only JSONL parts under ``root``; safe for many writers on a shared filesystem."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()
        self._files: dict[str, Any] = {}
        self._writer_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def append(self, record: GenerationRecord) -> None:
        """Write one record durably (flush + fsync) before returning."""
        with self._lock:
            f = self._files.get(record.task)
            if f is None:
                folder = self.root / record.task
                folder.mkdir(parents=True, exist_ok=True)
                f = open(folder / f"part-{self._writer_id}.jsonl", "a", encoding="utf-8")
                self._files[record.task] = f
            f.write(record.to_json() + "\n")
            f.flush()
            os.fsync(f.fileno())

    def close(self) -> None:
        with self._lock:
            for f in self._files.values():
                f.close()
            self._files.clear()

    def records(self, task: str) -> Iterator[GenerationRecord]:
        """Every record of ``task`` in every part (a torn last line from a killed writer is skipped)."""
        folder = self.root / task
        if not folder.is_dir():
            return
        for part in sorted(folder.glob("part-*.jsonl")):
            with open(part, encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    if not line.endswith("\n"):
                        log.warning("%s:%d: torn last record (writer killed mid-write), ignored", part, n)
                        continue
                    try:
                        yield GenerationRecord(**json.loads(line))
                    except (json.JSONDecodeError, TypeError) as exc:
                        log.warning("%s:%d: unreadable record ignored (%s)", part, n, exc)

    def latest(self, task: str) -> dict[str, GenerationRecord]:
        """key -> the record that counts: an ``ok`` one if any, else the latest failure."""
        out: dict[str, GenerationRecord] = {}
        for r in self.records(task):
            cur = out.get(r.key)
            if cur is None or (cur.status != "ok" and (r.status == "ok" or r.created_at >= cur.created_at)):
                out[r.key] = r
        return out

    def done_keys(self, task: str, retry_failed: bool = False) -> set[str]:
        """Keys not to request again: answered ones, and failed ones that were paid (an answer came
        back but never validated) unless ``retry_failed``. Failures that never got an answer
        (attempts exhausted on 429/5xx/timeouts) cost nothing and are always tried again."""
        return {k for k, r in self.latest(task).items()
                if r.status == "ok" or (r.paid and not retry_failed)}
