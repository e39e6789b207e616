"""Where generation answers are stored: a rehearsal against another endpoint never fills the real store."""

from __future__ import annotations

from pathlib import Path

from rsretrieval.config import load_config


def test_a_rehearsal_endpoint_gets_its_own_response_store(tmp_path: Path) -> None:
    from rsretrieval.pipelines.stages.generation_tasks import store_dir

    real = load_config(None, [f"cache_dir={tmp_path}"])
    fake = load_config(None, [f"cache_dir={tmp_path}", "generation.base_url=http://127.0.0.1:8765"])
    given = load_config(None, [f"cache_dir={tmp_path}", "generation.base_url=http://127.0.0.1:8765",
                               f"generation.store_dir={tmp_path / 's'}"])
    assert store_dir(real) == tmp_path / "generation"
    assert store_dir(fake) == tmp_path / "generation@127.0.0.1_8765"
    assert store_dir(given) == tmp_path / "s"
