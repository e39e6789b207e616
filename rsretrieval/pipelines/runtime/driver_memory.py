"""The driver's memory per step of a run (``driver_memory.csv``): what a corpus-size run needs to know
before it is sized, and the check that the driver holds no per-row data (issue 20).

A thread samples this process every ``interval`` s. Per step it keeps the peak RSS and the peak of its
anonymous part (RSS minus file-backed and shared pages: what the driver itself allocated; memory-mapped
vector stores and Ray's shared-memory object store are file-backed or shared, so the kernel can drop
or share them and they do not count there).
"""

from __future__ import annotations

import csv
import functools
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

MIB = 2**20
COLUMNS = ["step", "seconds", "peak_rss_mb", "peak_anon_mb", "end_rss_mb", "end_anon_mb", "released_mb"]


def release_free_heap() -> bool:
    """Hand the heap pages freed by the step that just ended back to the OS (glibc ``malloc_trim``).

    A step's transient per-row objects (parsed answers, id lists) leave glibc's heap holding freed
    pages that no later step of the driver reuses, while Ray's workers on the same node could; on
    other C libraries this is a no-op. Returns whether anything was trimmed."""
    import gc

    gc.collect()
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


@functools.cache
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, looked up once (``find_library`` runs ``ldconfig``), or None elsewhere."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def _reading(proc: Any) -> tuple[int, int]:
    info = proc.memory_info()
    return info.rss, info.rss - getattr(info, "shared", 0)


class DriverMemory:
    """Context manager: per-step peaks of this process' RSS and anonymous memory (bytes)."""

    def __init__(self, interval: float = 0.5, path: Path | None = None) -> None:
        import psutil  # a Ray dependency

        self.interval, self.path = interval, path
        if path is not None:  # written as the steps end: a run killed for memory keeps its trace
            with open(path, "w", newline="", encoding="utf-8") as fh:
                csv.writer(fh).writerow(COLUMNS)
        self.steps: list[dict[str, Any]] = []
        self._proc = psutil.Process()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.perf_counter()
        self._peak = _reading(self._proc)

    def __enter__(self) -> "DriverMemory":
        self._thread = threading.Thread(target=self._run, name="driver-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        rss, anon = _reading(self._proc)
        with self._lock:
            self._peak = (max(self._peak[0], rss), max(self._peak[1], anon))

    def mark(self, step: str) -> dict[str, Any]:
        """Close the current step: its peaks since the last mark, the reading at its end (after the heap it
        freed went back to the OS) and its seconds."""
        self._sample()
        before = _reading(self._proc)[1]
        release_free_heap()
        rss, anon = _reading(self._proc)
        now = time.perf_counter()
        with self._lock:
            peak, self._peak = self._peak, (rss, anon)
        row = {"step": step, "seconds": round(now - self._t0, 2), "peak_rss_mb": round(peak[0] / MIB),
               "peak_anon_mb": round(peak[1] / MIB), "end_rss_mb": round(rss / MIB), "end_anon_mb": round(anon / MIB),
               "released_mb": round(max(before - anon, 0) / MIB)}
        self._t0 = now
        self.steps.append(row)
        if self.path is not None:
            with open(self.path, "a", newline="", encoding="utf-8") as fh:
                csv.DictWriter(fh, COLUMNS).writerow(row)
        return row

    @property
    def peak_mb(self) -> dict[str, int]:
        """The run's peaks so far (MiB)."""
        return {"rss": max((r["peak_rss_mb"] for r in self.steps), default=0),
                "anon": max((r["peak_anon_mb"] for r in self.steps), default=0)}

    def write(self, path: Path) -> Path:
        """``driver_memory.csv``: one row per step."""
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, COLUMNS)
            writer.writeheader()
            writer.writerows(self.steps)
        return path
