"""rsretrieval query: the index is the benchmark's cache; scores equal the benchmark's; printouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from rsretrieval.config import load_config
from tests.conftest import QUICK_CONFIG


@pytest.fixture(scope="module")
def indexed(session_cache: Path, ray_local):
    from rsretrieval.pipelines.query import build_index

    cfg = load_config(QUICK_CONFIG, [f"cache_dir={session_cache}"])
    return cfg, build_index(cfg, scene_methods=("uniform",))


def test_v2v_query_scores_equal_the_benchmark_embeddings(indexed) -> None:
    from rsretrieval.data.registry import evaluation_split, load_dataset
    from rsretrieval.pipelines.benchmark import split_vectors
    from rsretrieval.pipelines.query import query_scores, ranked

    cfg, index = indexed
    dcfg = cfg.datasets[0]
    ds = evaluation_split(load_dataset(dcfg, cfg.cache_dir), dcfg)
    caps = ds.captions.filter(pc.equal(ds.captions["variant"], "fine_grained")).slice(0, 3)
    rows, cap_vec, img_vec = split_vectors(cfg, cfg.backbones[0], ds)  # what the benchmark scores with
    texts = caps["text"].to_pylist()
    got = query_scores(index, cfg, texts, "v2v")
    want = cap_vec[[rows[c] for c in caps["caption_id"].to_pylist()]] @ img_vec.T
    assert got.shape == (3, ds.images.num_rows)
    np.testing.assert_allclose(got, want, atol=1e-4)
    top = ranked(index, got, 5)
    assert [h["rank"] for h in top[0]] == [1, 2, 3, 4, 5]
    assert top[0][0]["score"] == pytest.approx(float(got[0].max()))


def test_scene_modes_and_errors(indexed) -> None:
    from rsretrieval.pipelines.query import format_matrix, query_scores

    cfg, index = indexed
    text = "An airport with one large gray runway. Two white planes on the apron next to the terminal."
    for mode in ("s2v", "v2s", "s2s"):
        s = query_scores(index, cfg, [text, "a forest"], mode)
        assert s.shape == (2, len(index.image_ids)) and np.isfinite(s).all()
    with pytest.raises(ValueError, match="no 'regions' image scenes"):
        query_scores(index, cfg, [text], "v2s", crops="regions")
    with pytest.raises(ValueError, match="supports"):
        query_scores(index, cfg, [text], "g2g")
    out = format_matrix(np.array([[0.891, 0.2], [0.1, 0.94]]), ["Query 1", "Query 2"], ["Img1", "Img2"])
    assert out.splitlines()[0] == "Similarity Score Matrix (Text-Image):"
    assert out.splitlines()[2].split() == ["Query", "1:", "0.89", "0.20"]
