"""Several tables of one backbone in one Ray Data pass: the same vectors as one pass per table, the same
cache folders, and only the tables not cached yet are embedded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from rsretrieval.config import EmbedConfig


def _checkpoint(path: Path) -> Path:
    """Seeded untrained rs-tiny weights: the test compares two ways of computing the same vectors."""
    import open_clip
    import torch

    from rsretrieval.encoders.loader import ensure_model_configs
    from rsretrieval.encoders.registry import get_backbone_spec

    ensure_model_configs()
    torch.manual_seed(0)
    torch.save(open_clip.create_model(get_backbone_spec("rs-tiny").arch).state_dict(), path)
    return path


@pytest.fixture()
def tables(tmp_path: Path) -> dict[str, pa.Table]:
    rng = np.random.default_rng(0)
    uris = []
    for i in range(6):
        uri = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(uri)
        uris.append(str(uri))
    images = pa.table({"image_id": [f"i{i}" for i in range(6)], "uri": uris})
    captions = pa.table({"caption_id": [f"c{i}" for i in range(9)],
                         "text": [f"{n} white storage tanks next to a road" for n in range(9)]})
    crops = pa.table({"scene_id": [f"i{i // 2}#{i % 2}" for i in range(8)], "uri": [uris[i // 2] for i in range(8)],
                      "x0": [0, 10] * 4, "y0": [0, 5] * 4, "x1": [20, 40] * 4, "y1": [30, 35] * 4})
    return {"images": images, "captions": captions, "crops": crops}


def test_one_pass_gives_the_vectors_and_caches_of_one_pass_per_table(tmp_path: Path, tables, ray_local,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    from rsretrieval.pipelines.stages.embed import embed_table, read_embeddings
    from rsretrieval.pipelines.stages.embed_many import EmbedRequest, embed_tables
    from rsretrieval.pipelines.stages.scene_crops import SceneCropEmbedStage

    ckpt = _checkpoint(tmp_path / "rs-tiny.pt")
    cfg = EmbedConfig(batch_size=4, concurrency=1)
    requests = [EmbedRequest("images", tables["images"]), EmbedRequest("captions", tables["captions"]),
                EmbedRequest("image_scenes-uniform", tables["crops"], SceneCropEmbedStage)]
    ids = [tables["images"]["image_id"].to_pylist(), tables["captions"]["caption_id"].to_pylist(),
           tables["crops"]["scene_id"].to_pylist()]
    with caplog.at_level("INFO", logger="rsretrieval.pipelines.stages.embed_many"):
        together = embed_tables(requests, "rs-tiny", ckpt, cfg, tmp_path / "one-pass")
    assert [c for _, c in together] == [False, False, False]
    assert any("in one pass" in r.getMessage() for r in caplog.records)
    alone = [embed_table(r.kind, r.table, "rs-tiny", ckpt, cfg, tmp_path / "per-table", r.stage_cls) for r in requests]
    for (p1, _), (p2, _), owner in zip(together, alone, ids):
        assert p1.name == p2.name  # the same cache key: the two paths share caches
        np.testing.assert_allclose(read_embeddings(p1, owner), read_embeddings(p2, owner), atol=1e-5)
        record = json.loads((p1 / "_SUCCESS").read_text())
        assert record["pass_rows"] == 6 + 9 + 8 and 0 < record["seconds"] <= record["pass_seconds"]

    # a new table beside cached ones: only it is embedded (through the one-table path)
    more = pa.table({"caption_id": ["x1", "x2"], "text": ["a red car", "a pond"]})
    again = embed_tables([*requests, EmbedRequest("text_scenes", more)], "rs-tiny", ckpt, cfg, tmp_path / "one-pass")
    assert [c for _, c in again] == [True, True, True, False]
    assert read_embeddings(again[3][0], ["x1", "x2"]).shape == (2, 128)
