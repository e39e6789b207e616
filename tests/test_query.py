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
    from rsretrieval.pipelines.jobs.query import build_index

    cfg = load_config(QUICK_CONFIG, [f"cache_dir={session_cache}"])
    return cfg, build_index(cfg, scene_methods=("uniform",))


def test_v2v_query_scores_equal_the_benchmark_embeddings(indexed) -> None:
    from rsretrieval.data.registry import evaluation_split, load_dataset
    from rsretrieval.pipelines.benchmark.steps import split_vectors
    from rsretrieval.pipelines.jobs.query import query_scores, ranked

    cfg, index = indexed
    dcfg = cfg.datasets[0]
    ds = evaluation_split(load_dataset(dcfg, cfg.cache_dir), dcfg)
    caps = ds.captions.filter(pc.equal(ds.captions["variant"], "fine_grained")).slice(0, 3)
    rows, cap_vec, img_vec = split_vectors(cfg, cfg.backbones[0], {"test": ds})["test"]  # what the benchmark scores with
    texts = caps["text"].to_pylist()
    got = query_scores(index, cfg, texts, "v2v")
    want = cap_vec[[rows[c] for c in caps["caption_id"].to_pylist()]] @ img_vec.T
    assert got.shape == (3, ds.images.num_rows)
    np.testing.assert_allclose(got, want, atol=1e-4)
    top = ranked(index, got, 5)
    assert [h["rank"] for h in top[0]] == [1, 2, 3, 4, 5]
    assert top[0][0]["score"] == pytest.approx(float(got[0].max()))


def test_scene_modes_and_errors(indexed) -> None:
    from rsretrieval.pipelines.jobs.query import format_matrix, query_scores

    cfg, index = indexed
    text = "An airport with one large gray runway. Two white planes on the apron next to the terminal."
    for mode in ("s2v", "v2s", "s2s"):
        s = query_scores(index, cfg, [text, "a forest"], mode)
        assert s.shape == (2, len(index.image_ids)) and np.isfinite(s).all()
    with pytest.raises(ValueError, match="no 'regions' image scenes"):
        query_scores(index, cfg, [text], "v2s", crops="regions")
    with pytest.raises(ValueError, match="no image graphs in the index"):
        query_scores(index, cfg, [text], "g2g")
    with pytest.raises(ValueError, match="supports"):
        query_scores(index, cfg, [text], "x2x")
    out = format_matrix(np.array([[0.891, 0.2], [0.1, 0.94]]), ["Query 1", "Query 2"], ["Img1", "Img2"])
    assert out.splitlines()[0] == "Similarity Score Matrix (Text-Image):"
    assert out.splitlines()[2].split() == ["Query", "1:", "0.89", "0.20"]


def test_graph_modes_score_like_the_benchmark(indexed) -> None:
    """G2G Hungarian of a caption's text equals the benchmark's row for that caption (same parser, same
    image graphs, same node embedder); VG2VG is the configured mix with the V2V cosine."""
    from rsretrieval.matching.hungarian import HungarianScorer
    from rsretrieval.pipelines.benchmark.graph_modes import GraphScoring, prepare_graphs
    from rsretrieval.pipelines.jobs.query import build_index, query_scores

    cfg, _ = indexed
    index = build_index(cfg, graphs=True)
    assert set(index.graphs) == {"simulated-vlm", "oracle"}
    caps = index.ds.captions.filter(pc.equal(index.ds.captions["variant"], "fine_grained")).slice(0, 4)
    texts = caps["text"].to_pylist()
    got = query_scores(index, cfg, texts, "g2g", graphs="oracle")
    graphs, scoring = prepare_graphs(cfg, index.ds), GraphScoring(cfg)
    q = scoring.nodes(graphs.captions.select(caps["caption_id"].to_pylist()))
    d = scoring.nodes(graphs.images["oracle"])  # in the split's image order, as the index's
    np.testing.assert_allclose(got, HungarianScorer(cfg.graph_matching.hungarian).score(q, d), atol=1e-5)
    gold = [index.image_ids.index(i) for i in caps["image_id"].to_pylist()]
    assert (got.argmax(axis=1) == gold).mean() >= 0.5  # oracle graphs find fine-grained images
    w = cfg.graph_matching.vg2vg_weight
    mixed = query_scores(index, cfg, texts, "vg2vg", graphs="oracle")
    np.testing.assert_allclose(mixed, (1 - w) * query_scores(index, cfg, texts, "v2v") + w * got, atol=1e-5)
    generated = query_scores(index, cfg, texts[:1], "g2g", graphs="generated")  # the simulated VLM's graphs
    assert generated.shape == (1, len(index.image_ids))
    with pytest.raises(ValueError, match="needs graph_matching.gmn_checkpoint"):
        query_scores(index, cfg, texts[:1], "g2g", graphs="oracle", similarity="gmn")
    with pytest.raises(ValueError, match="no 'nope' image graphs"):
        query_scores(index, cfg, texts[:1], "g2g", graphs="nope")
