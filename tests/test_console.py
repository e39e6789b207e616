"""The console a person sees vs the run log: our progress lines, others' warnings minus the false ones,
everything in run.log; progress bars only on a terminal."""

from __future__ import annotations

import io
import logging
import sys
from pathlib import Path

import pytest

from rsretrieval import console


@pytest.fixture()
def routed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    root = logging.getLogger()
    before = list(root.handlers)
    log_file = console.setup_logging(tmp_path / "run" / "run.log")
    yield out, log_file
    for h in list(root.handlers):
        if h not in before:
            root.removeHandler(h)
            h.close()
    for h in before:
        if h not in root.handlers:
            root.addHandler(h)


def test_console_shows_our_lines_and_real_warnings_and_the_log_file_has_everything(routed) -> None:
    out, log_file = routed
    assert not log_file.parent.exists()  # the run folder appears with its first line, not before
    logging.getLogger("rsretrieval.pipelines.stages.embed").info("embeddings images: 300 rows computed")
    logging.getLogger("rsretrieval.pipelines.benchmark.cells").info("one line per cell")
    logging.getLogger("ray.data").info("Ray Data internals")
    logging.getLogger("ray.data").debug("Ray Data debug detail")
    logging.getLogger("ray.data").warning("a real warning from Ray Data")
    logging.getLogger("root").warning("No pretrained weights loaded for model 'rs-tiny'. Model initialized randomly.")
    shown = out.getvalue()
    assert "embeddings images: 300 rows computed" in shown
    assert "a real warning from Ray Data" in shown
    for hidden in ("one line per cell", "Ray Data internals", "No pretrained weights"):
        assert hidden not in shown
    written = log_file.read_text()
    for line in ("embeddings images", "one line per cell", "Ray Data internals", "a real warning"):
        assert line in written
    assert "debug detail" not in written


def test_progress_bars_only_on_a_terminal(routed, monkeypatch: pytest.MonkeyPatch) -> None:
    items = [1, 2, 3]
    assert console.progress(items, "steps") is items  # captured output: no bar, no extra line
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    bar = console.progress(items, "steps", len(items))
    assert bar is not items and list(bar) == items
