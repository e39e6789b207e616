"""Batch mode of the fake Gemini server (Developer API, inline requests), as ``client.batches`` sends it.

A mixin of :class:`rsretrieval.fake_gemini.server.FakeGeminiServer`: it uses the server's
responder, counters, locks and fault settings, so an inlined request is answered and counted like an
online one, once, when its batch succeeds.
"""

from __future__ import annotations

import random
import time
from typing import Any
from urllib.parse import parse_qs

from rsretrieval.fake_gemini.protocol import BATCH_TERMINAL, STATUS_MESSAGES, iso_time, error_body, parse_request, success_body


class BatchModeMixin:
    """``batchGenerateContent``, polls, list, cancel and delete (see the fake server's docstring)."""

    def _batch_op(self, job: dict[str, Any], with_output: bool = True) -> dict[str, Any]:
        """A job as the API returns it: a long-running Operation whose ``metadata`` is the batch."""
        meta: dict[str, Any] = {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch",
            "name": job["name"], "model": f"models/{job['model']}", "displayName": job["display_name"],
            "createTime": iso_time(job["created"]), "updateTime": iso_time(job["updated"]), "state": job["state"],
            "batchStats": job["stats"]}
        done = job["state"] in BATCH_TERMINAL
        if done:
            meta["endTime"] = iso_time(job["updated"])
        op: dict[str, Any] = {"name": job["name"], "metadata": meta, "done": done}
        if with_output and job["output"] is not None:
            meta["output"] = {"inlinedResponses": {"inlinedResponses": job["output"]}}
        return op

    def _batch_create(self, h: Any, model: str, version: str, body: dict[str, Any]) -> None:
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

    def _batch_get(self, h: Any, bid: str) -> None:
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
            return {"error": {"code": 13, "message": STATUS_MESSAGES[500]}, **meta}
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

    def _batch_list(self, h: Any, query: str) -> None:
        q = parse_qs(query)
        size, start = int(q.get("pageSize", ["50"])[0]), int(q.get("pageToken", ["0"])[0] or 0)
        with self._batch_lock:
            jobs = list(reversed(self.batches.values()))  # newest first
            page = [self._batch_op(j, with_output=False) for j in jobs[start:start + size]]
        body: dict[str, Any] = {"operations": page}
        if start + size < len(jobs):
            body["nextPageToken"] = str(start + size)
        h.send_json(200, body)

    def _batch_cancel_or_delete(self, h: Any, bid: str, delete: bool) -> None:
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
