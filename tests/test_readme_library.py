"""The README's "Use as a library" code blocks run, in order, in one namespace (offline, CPU)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Use as a library"


def library_blocks() -> list[str]:
    """Every ```python block between the section's heading and the next '## ' heading."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n{SECTION}\n")
    end = text.find("\n## ", start + len(SECTION) + 2)
    section = text[start : end if end != -1 else len(text)]
    return re.findall(r"^```python\n(.*?)^```", section, flags=re.S | re.M)


def test_section_has_blocks() -> None:
    blocks = library_blocks()
    assert 2 <= len(blocks) <= 3
    assert any("rsretrieval.evaluate(" in b for b in blocks)


def test_blocks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths of the blocks (the cache folder) land in the temp dir
    monkeypatch.delenv("RSR_CACHE_DIR", raising=False)
    namespace: dict[str, Any] = {"__name__": "readme", "tmp": tmp_path}
    for i, block in enumerate(library_blocks()):
        exec(compile(block, f"README.md:{SECTION}:block{i + 1}", "exec"), namespace)
    result = namespace["result"]  # the last block's evaluation of rs-tiny on synthrs
    assert set(result.recall) == {1, 5, 10} and result.mR6 is not None
    assert len(result.ranks) == 16 * 6  # 16 test images x (5 original + 1 fine-grained captions)
    assert (tmp_path / "rsr-cache" / "backbones").is_dir()
