"""Gemini Batch mode (Developer API, inline requests): the inputs not yet in the store, answered
within 24 h at ``batch_price_factor`` of the online price.

**Never pay twice.** Every job is announced in a manifest, ``<store root>/_batches/<task>.jsonl``,
before ``client.batches.create`` and named in it right after; one fsync'ed JSON line per event:

* ``{"event": "intent", "display_name", "model", "prompt_version", "keys", "input_hashes", "input_ids", "at"}``
* ``{"event": "created", "display_name", "name", "at"}`` (``name`` is ``batches/<id>``)
* ``{"event": "finished", "display_name", "name", "state", "at"}``

The display name is deterministic, ``rsr-<task>-<sha256(task|model|prompt version|sorted keys)[:16]>-<n>``,
``n`` counting the earlier intents with the same hash (a resubmission after a failed job gets a new
name). A run first resumes every unfinished entry: a named one is polled, never resubmitted; an
unnamed one (the run died between create and the write) is looked up by display name with
``client.batches.list``, polled if found and resubmitted only if not. Keys with a done record in the
store, or in an unfinished job, are never submitted. Each job's answers are appended to the store as
it is read (parsed by the task; an invalid answer is a paid ``failed`` record, not re-asked); a job
that failed, expired or was cancelled records its keys as unpaid failures with the state as reason,
so the next run requests them again. Polling stops after ``max_wait_s`` with
:class:`BatchStillRunning`, which names the jobs; rerunning the same command resumes them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from rsretrieval._lazy import lazy_import
from rsretrieval.generation.config import GenerationConfig
from rsretrieval.generation.gemini import (GenerationAuthError, GenerationInput, http_status, transport_errors, api_key_from_env,
                                         request_parts)
from rsretrieval.generation.store import GenerationRecord, ResponseStore, record_key
from rsretrieval.generation.tasks import GenerationTask, InvalidResponse, to_json

log = logging.getLogger(__name__)

MAX_INLINE_REQUESTS = 500  # inline requests per batch job
MAX_INLINE_BYTES = 15_000_000  # estimated request bytes per job (inline batches must stay under 20 MB)
DEFAULT_MAX_WAIT_S = 26 * 3600.0  # a job ends (or expires) within 24 h of its creation
MAX_POLL_ERRORS = 10  # consecutive failed polls of one job before giving up (resumable)
OK_STATES = {"JOB_STATE_SUCCEEDED", "JOB_STATE_PARTIALLY_SUCCEEDED"}
TERMINAL_STATES = OK_STATES | {"JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}


class BatchStillRunning(RuntimeError):
    """Polling stopped before every job ended; rerunning the same command resumes them."""


@dataclass
class BatchEntry:
    """One job of the manifest (its intent, plus its name and final state once known)."""

    display_name: str
    model: str
    prompt_version: str
    keys: list[str]
    input_hashes: list[str]
    input_ids: list[str]
    at: float
    name: str | None = None
    state: str | None = None  # set once finished
    last_state: str = "unknown"  # as last polled


class BatchManifest:
    """Append-only JSONL of batch events of one task (see the module docstring)."""

    def __init__(self, root: Path | str, task: str) -> None:
        self.path = Path(root) / "_batches" / f"{task}.jsonl"

    def append(self, event: str, **fields: Any) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"event": event, **fields, "at": time.time()}) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def entries(self) -> dict[str, BatchEntry]:
        """display_name -> entry, in intent order (a torn last line is ignored)."""
        out: dict[str, BatchEntry] = {}
        if not self.path.is_file():
            return out
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    ev = json.loads(line) if line.endswith("\n") else None
                except json.JSONDecodeError:
                    ev = None
                if not isinstance(ev, dict):
                    log.warning("%s: unreadable line ignored", self.path)
                    continue
                dn = ev.get("display_name")
                if ev.get("event") == "intent":
                    out[dn] = BatchEntry(dn, ev["model"], ev["prompt_version"], ev["keys"], ev["input_hashes"],
                                         ev["input_ids"], ev["at"])
                elif dn in out:
                    out[dn].name = ev.get("name") or out[dn].name
                    if ev.get("event") == "finished":
                        out[dn].state = ev["state"]
        return out


def _state(job: Any) -> str:
    state = getattr(job, "state", None)
    return str(getattr(state, "value", state) or "JOB_STATE_UNSPECIFIED")


def _chunks(task: GenerationTask, items: list[tuple[str, GenerationInput]]) -> list[list[tuple[str, GenerationInput]]]:
    """Split into jobs of at most MAX_INLINE_REQUESTS requests and about MAX_INLINE_BYTES each."""
    out: list[list[tuple[str, GenerationInput]]] = []
    size = 0
    for key, inp in items:
        n = len(inp.image_bytes or b"") * 4 // 3 + len((inp.text or "") + (inp.extra_text or "") + task.system_prompt) + 512
        if not out or len(out[-1]) >= MAX_INLINE_REQUESTS or size + n > MAX_INLINE_BYTES:
            out.append([])
            size = 0
        out[-1].append((key, inp))
        size += n
    return out


class BatchRunner:
    """Submits, resumes and collects the batch jobs of one task; ``run`` returns the records it wrote."""

    def __init__(self, cfg: GenerationConfig, store: ResponseStore, api_key: str | None = None, client: Any = None,
                 max_wait_s: float = DEFAULT_MAX_WAIT_S, sleep: Callable[[float], None] = time.sleep) -> None:
        self.types = lazy_import("google.genai.types")
        if client is None:
            genai = lazy_import("google.genai")
            # attempts=1: a create() retried after a timeout could start a second, paid job
            http = self.types.HttpOptions(base_url=cfg.base_url, api_version=cfg.api_version,
                                          timeout=int(cfg.timeout_s * 1000),
                                          retry_options=self.types.HttpRetryOptions(attempts=1))
            client = genai.Client(api_key=api_key or api_key_from_env(), http_options=http)
        self.cfg, self.store, self.client, self.max_wait_s, self.sleep = cfg, store, client, max_wait_s, sleep
        self.fresh: list[GenerationRecord] = []

    def run(self, task: GenerationTask, inputs: Sequence[GenerationInput]) -> list[GenerationRecord]:
        manifest = BatchManifest(self.store.root, task.name)
        pending = self._resume(manifest)
        busy = {k for e in pending for k in e.keys}
        done = self.store.done_keys(task.name, self.cfg.retry_failed)
        todo: dict[str, GenerationInput] = {}
        for inp in inputs:
            key = record_key(task.name, self.cfg.model, task.prompt_version, inp.hash())
            if key not in done and key not in busy:
                todo.setdefault(key, inp)
        for chunk in _chunks(task, list(todo.items())):
            pending.append(self._submit(task, manifest, chunk))
        self._poll(task, manifest, pending)
        return self.fresh

    def _resume(self, manifest: BatchManifest) -> list[BatchEntry]:
        out = []
        for e in manifest.entries().values():
            if e.state is not None:
                continue
            if e.name is None:  # killed between create() and writing its name
                e.name = self._find(e.display_name)
                if e.name is None:
                    log.warning("batch %s was never created: its inputs are submitted again", e.display_name)
                    manifest.append("finished", display_name=e.display_name, name=None, state="NOT_CREATED")
                    continue
                manifest.append("created", display_name=e.display_name, name=e.name)
            log.info("resuming batch %s (%s, %d inputs)", e.name, e.display_name, len(e.keys))
            out.append(e)
        return out

    def _find(self, display_name: str) -> str | None:
        """The name of the job with this display name, if it exists (a failing lookup stops the run)."""
        return next((job.name for job in self.client.batches.list(config={"page_size": 100})
                     if job.display_name == display_name), None)

    def _submit(self, task: GenerationTask, manifest: BatchManifest, chunk: list[tuple[str, GenerationInput]]) -> BatchEntry:
        keys = [k for k, _ in chunk]
        digest = hashlib.sha256("|".join([task.name, self.cfg.model, task.prompt_version, *sorted(keys)]).encode())
        prefix = f"rsr-{task.name}-{digest.hexdigest()[:16]}-"
        dn = prefix + str(sum(name.startswith(prefix) for name in manifest.entries()))
        entry = BatchEntry(dn, self.cfg.model, task.prompt_version, keys, [inp.hash() for _, inp in chunk],
                           [inp.input_id for _, inp in chunk], time.time())
        requests = [self._inlined(task, key, inp) for key, inp in chunk]
        manifest.append("intent", display_name=dn, model=entry.model, prompt_version=entry.prompt_version,
                        keys=entry.keys, input_hashes=entry.input_hashes, input_ids=entry.input_ids)
        try:
            job = self.client.batches.create(model=self.cfg.model, src=requests, config={"display_name": dn})
        except Exception as exc:
            code = http_status(exc)
            if code is None or code >= 500:  # the job may exist: the next run looks it up by display name
                raise RuntimeError(f"creating batch {dn} failed ({type(exc).__name__}: {exc}); the job may exist: "
                                   "rerun the same command, it looks the job up before submitting again") from exc
            manifest.append("finished", display_name=dn, name=None, state=f"REJECTED {code}")  # no job exists
            if code in (401, 403):
                raise GenerationAuthError(f"Gemini refused the API key ({code}): {exc}") from exc
            raise RuntimeError(f"Gemini refused batch {dn} ({len(keys)} requests): {exc}") from exc
        entry.name = job.name
        manifest.append("created", display_name=dn, name=job.name)
        log.info("submitted batch %s (%s): %d %s requests", job.name, dn, len(keys), task.name)
        return entry

    def _inlined(self, task: GenerationTask, key: str, inp: GenerationInput) -> Any:
        """The online path's request as an inlined batch request."""
        contents, config = request_parts(self.types, task, inp)
        return self.types.InlinedRequest(contents=contents, config=config, metadata={"key": key})

    def _poll(self, task: GenerationTask, manifest: BatchManifest, pending: list[BatchEntry]) -> None:
        deadline = time.monotonic() + self.max_wait_s
        errors = {e.display_name: 0 for e in pending}
        while pending:
            still = []
            for e in pending:
                try:
                    job = self.client.batches.get(name=e.name)
                except Exception as exc:
                    code = http_status(exc)
                    if code in (401, 403):
                        raise GenerationAuthError(f"Gemini refused the API key ({code}): {exc}") from exc
                    if code == 404:  # deleted: nothing to read, its inputs are requested again
                        self._collect(task, manifest, e, None, "NOT_FOUND")
                        continue
                    if code is None and not isinstance(exc, transport_errors()):
                        raise
                    errors[e.display_name] += 1
                    e.last_state = f"poll failed: {type(exc).__name__} {code or ''}"
                    if errors[e.display_name] >= MAX_POLL_ERRORS:
                        raise BatchStillRunning(self._still_running(manifest, pending, f"polls keep failing ({exc})")) from exc
                    still.append(e)
                    continue
                errors[e.display_name], e.last_state = 0, _state(job)
                if e.last_state in TERMINAL_STATES:
                    self._collect(task, manifest, e, job, e.last_state)
                else:
                    still.append(e)
            pending = still
            if pending and time.monotonic() + self.cfg.batch_poll_s > deadline:
                raise BatchStillRunning(self._still_running(manifest, pending, f"waited {self.max_wait_s:.0f} s"))
            if pending:
                self.sleep(self.cfg.batch_poll_s)

    def _still_running(self, manifest: BatchManifest, pending: list[BatchEntry], why: str) -> str:
        jobs = "; ".join(f"{e.name} ({e.display_name}, {len(e.keys)} inputs, {e.last_state})"
                         for e in pending if e.state is None)
        return (f"Gemini batch job(s) not finished ({why}): {jobs}. Nothing is lost: they are recorded in "
                f"{manifest.path}; rerun the same command to resume polling them (they are not resubmitted).")

    def _collect(self, task: GenerationTask, manifest: BatchManifest, e: BatchEntry, job: Any, state: str) -> None:
        """Store one finished job's answers (or its keys as unpaid failures), then mark it finished."""
        ok_keys = {k for k, r in self.store.latest(task.name).items() if r.status == "ok"}
        responses = (job.dest.inlined_responses if job is not None and job.dest else None) or []
        by_key = {((r.metadata or {}).get("key") or (e.keys[i] if i < len(e.keys) else "")): r
                  for i, r in enumerate(responses)}
        for key, in_hash, input_id in zip(e.keys, e.input_hashes, e.input_ids):
            if key in ok_keys:
                continue  # already read by an earlier, interrupted collection
            rec = GenerationRecord(key=key, task=task.name, model=e.model, prompt_version=e.prompt_version,
                                   input_hash=in_hash, input_id=input_id, status="failed",
                                   generator=f"{e.model}@{e.prompt_version} (batch)", latency_s=time.time() - e.at)
            item = by_key.get(key)
            if state not in OK_STATES:
                rec.error = f"batch {e.name} ended {state}"
            elif item is None:
                rec.error = f"batch {e.name} ({state}) returned no answer for this input"
            elif item.error is not None or item.response is None:
                rec.calls = 1
                rec.error = f"batch item error {getattr(item.error, 'code', None)}: {getattr(item.error, 'message', None)}"
            else:
                self._fill(task, rec, item.response)
            self.store.append(rec)
            self.fresh.append(rec)
        manifest.append("finished", display_name=e.display_name, name=e.name, state=state)
        e.state = state
        log.info("batch %s ended %s", e.name, state)

    @staticmethod
    def _fill(task: GenerationTask, rec: GenerationRecord, resp: Any) -> None:
        usage, rec.calls, rec.raw_text = resp.usage_metadata, 1, resp.text
        rec.tokens_in = (usage.prompt_token_count or 0) if usage else 0
        rec.tokens_out = (usage.candidates_token_count or 0) if usage else 0
        try:
            rec.parsed = to_json(task.parse(resp.text))
            rec.status, rec.error = "ok", None
        except InvalidResponse as exc:
            rec.error = f"invalid answer: {exc} (batch mode: not re-asked)"
