"""Object store spilling, as Ray reports it: so a stage that ran under memory pressure says so.

Ray moves objects from a full object store to disk ("spilling") and back ("restoring") instead of
failing; the run still completes, only slower. Nothing in the results would show it, so
:func:`spill_stats` reads the cluster's aggregate counters and a stage records the difference.
The counters are cluster-wide: work running beside the stage is counted too.
"""

from __future__ import annotations

import logging
import re

log = logging.getLogger(__name__)

_LINE = re.compile(r"^(Spilled|Restored) (\d+) MiB, (\d+) objects", re.MULTILINE)


def parse_spill_summary(text: str) -> dict[str, int]:
    """Spilled / restored MiB and objects from ``ray memory --stats-only`` text (0 when absent)."""
    out = {"spilled_mib": 0, "spilled_objects": 0, "restored_mib": 0, "restored_objects": 0}
    for kind, mib, objects in _LINE.findall(text):
        out[f"{kind.lower()}_mib"], out[f"{kind.lower()}_objects"] = int(mib), int(objects)
    return out


def spill_stats() -> dict[str, int] | None:
    """The connected cluster's spill counters since it started; None when Ray cannot say (never raises)."""
    try:
        import ray
        from ray._private.internal_api import memory_summary  # the text behind `ray memory --stats-only`

        # the address is explicit: with several clusters on one machine Ray would pick the latest one
        return parse_spill_summary(memory_summary(address=ray.get_runtime_context().gcs_address, stats_only=True))
    except Exception as exc:  # an internal API: a Ray upgrade may move it; spilling is a note, not a result
        log.debug("object store stats unavailable: %s", exc)
        return None


def spill_delta(before: dict[str, int] | None, after: dict[str, int] | None) -> dict[str, int] | None:
    """What spilled / was restored between two :func:`spill_stats` readings (None if either is missing)."""
    if before is None or after is None:
        return None
    return {k: after[k] - before[k] for k in after}


def spill_note(stage: str, delta: dict[str, int] | None) -> str | None:
    """A log line when the object store spilled during ``stage``, else None."""
    if not delta or not delta["spilled_objects"]:
        return None
    return (f"{stage}: the object store spilled {delta['spilled_mib']} MiB ({delta['spilled_objects']} objects) to disk "
            f"and restored {delta['restored_mib']} MiB; the stage completed, slower. More object_store_memory "
            "(ray start --object-store-memory) or a smaller embed.batch_size avoids it")
