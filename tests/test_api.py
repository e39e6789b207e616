"""The public API: ``rsretrieval.evaluate`` against a plain argsort reference, its input checks, and the
package's lazy exports."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import rsretrieval
from rsretrieval import evaluate

HEAVY = ["ray", "open_clip", "sam2", "google.genai", "torch_geometric", "sentence_transformers", "mlflow"]


def data(n_docs: int = 40, per_doc: int = 3, dim: int = 16, noise: float = 1.5,
         seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Documents (N, D), queries (Q, D) near their gold document, gold (Q,): every document is gold of
    ``per_doc`` queries (so I2T is defined)."""
    rng = np.random.default_rng(seed)
    docs = rng.normal(size=(n_docs, dim)).astype(np.float32)
    gold = rng.permutation(np.repeat(np.arange(n_docs), per_doc))
    queries = (docs[gold] + noise * rng.normal(size=(len(gold), dim))).astype(np.float32)
    return queries, docs, gold


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a.astype(np.float64) @ b.astype(np.float64).T


def naive_ranks(scores: np.ndarray, positives: list[set[int]]) -> np.ndarray:
    """Per query: sort the documents by score, best first; rank = 1-based position of the first positive."""
    ranks = []
    for row, pos in zip(scores, positives):
        order = np.argsort(-row, kind="stable")
        ranks.append(next(i for i, d in enumerate(order) if int(d) in pos) + 1)
    return np.array(ranks)


def naive_recall(ranks: np.ndarray) -> dict[int, float]:
    return {k: 100.0 * sum(r <= k for r in ranks) / len(ranks) for k in (1, 5, 10)}


def test_embeddings_match_naive_reference() -> None:
    queries, docs, gold = data()
    result = evaluate(queries, docs, gold)
    expected = naive_ranks(cosine(queries, docs), [{g} for g in gold])
    np.testing.assert_array_equal(result.ranks, expected)
    assert result.ranks.dtype == np.int64
    want = naive_recall(expected)
    assert result.recall == pytest.approx(want)
    assert 0 < want[1] < 100  # a non-trivial case
    assert result.mR == pytest.approx((want[1] + want[5] + want[10]) / 3)
    assert result.mR6 is None and result.i2t_recall is None
    assert result.as_dict() == pytest.approx({"R@1": want[1], "R@5": want[5], "R@10": want[10], "mR": result.mR})


def test_torch_inputs_and_other_ks() -> None:
    queries, docs, gold = data()
    a = evaluate(queries, docs, gold, ks=(1, 3))
    b = evaluate(torch.from_numpy(queries), torch.from_numpy(docs).requires_grad_(), torch.from_numpy(gold))
    np.testing.assert_array_equal(a.ranks, b.ranks)
    assert set(a.recall) == {1, 3} and np.isnan(a.mR)  # mR needs K = 1, 5, 10, as in the benchmark


@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
def test_score_matrix_and_score_fn_match_embeddings(chunk_size: int) -> None:
    queries, docs, gold = data()
    ref = evaluate(queries, docs, gold, chunk_size=chunk_size)
    scores = cosine(queries, docs)
    by_matrix = evaluate(score_fn=scores, gold=gold, chunk_size=chunk_size)
    calls: list[tuple[int, int]] = []

    def block(start: int, end: int) -> np.ndarray:
        calls.append((start, end))
        return scores[start:end]

    by_fn = evaluate(score_fn=block, gold=gold, chunk_size=chunk_size)
    for r in (by_matrix, by_fn):
        np.testing.assert_array_equal(r.ranks, ref.ranks)
        assert r.recall == ref.recall and r.mR == ref.mR
    assert calls == [(a, min(a + chunk_size, len(gold))) for a in range(0, len(gold), chunk_size)]  # each block once


def test_gold_as_image_ids() -> None:
    queries, docs, gold = data()
    ids = [f"img{i}" for i in range(len(docs))]
    by_ids = evaluate(queries, docs, [ids[g] for g in gold], image_ids=ids)
    np.testing.assert_array_equal(by_ids.ranks, evaluate(queries, docs, gold).ranks)


def test_i2t_gives_mr6() -> None:
    queries, docs, gold = data()
    result = evaluate(queries, docs, gold, i2t=True)
    scores = cosine(queries, docs)
    captions_of = [set(np.flatnonzero(gold == d).tolist()) for d in range(len(docs))]
    i2t = naive_recall(naive_ranks(scores.T, captions_of))
    t2i = naive_recall(naive_ranks(scores, [{g} for g in gold]))
    assert result.i2t_recall == pytest.approx(i2t)
    assert result.mR6 == pytest.approx(np.mean([*t2i.values(), *i2t.values()]))
    assert evaluate(score_fn=scores, gold=gold, i2t=True).mR6 == pytest.approx(result.mR6)
    flat = result.as_dict()
    assert flat["mR6"] == result.mR6 and flat["I2T_R@5"] == result.i2t_recall[5]


def test_result_is_frozen() -> None:
    queries, docs, gold = data()
    result = evaluate(queries, docs, gold)
    with pytest.raises(AttributeError):
        result.mR = 0.0  # type: ignore[misc]
    with pytest.raises(ValueError):
        result.ranks[0] = 0


def test_bad_inputs_say_what_is_wrong() -> None:
    queries, docs, gold = data()
    with pytest.raises(ValueError, match=r"gold has shape \(119,\) but queries has shape \(120, 16\)"):
        evaluate(queries, docs, gold[:-1])
    with pytest.raises(ValueError, match=r"gold has shape \(120,\) but the score matrix has shape \(119, 40\)"):
        evaluate(score_fn=cosine(queries, docs)[:-1], gold=gold)
    with pytest.raises(ValueError, match=r"queries \(120, 16\) and documents \(40, 8\) have different embedding dims"):
        evaluate(queries, docs[:, :8], gold)
    bad = gold.copy()
    bad[7] = 40
    with pytest.raises(IndexError, match=r"gold\[7\] = 40 \(query 7\) is out of range for 40 documents"):
        evaluate(queries, docs, bad)
    bad[7] = -1
    with pytest.raises(IndexError, match=r"gold\[7\] = -1"):
        evaluate(score_fn=lambda a, b: cosine(queries[a:b], docs), gold=bad)
    with pytest.raises(ValueError, match="not both and not neither"):
        evaluate(queries, docs, gold, score_fn=cosine(queries, docs))
    with pytest.raises(ValueError, match="not both and not neither"):
        evaluate(gold=gold)
    with pytest.raises(ValueError, match="documents is required"):
        evaluate(queries, gold=gold)
    with pytest.raises(ValueError, match="gold is required"):
        evaluate(queries, docs)
    with pytest.raises(TypeError, match="integer document indices"):
        evaluate(queries, docs, gold.astype(float))
    with pytest.raises(ValueError, match="must be a 2-D array"):
        evaluate(queries[0], docs, gold[:1])
    with pytest.raises(ValueError, match="i2t needs the document x query scores"):
        evaluate(score_fn=lambda a, b: cosine(queries[a:b], docs), gold=gold, i2t=True)
    with pytest.raises(ValueError, match=r"i2t needs every document to be the gold .* e\.g\. document 39"):
        keep = gold != 39
        evaluate(queries[keep], docs, gold[keep], i2t=True)
    with pytest.raises(ValueError, match=r"score_fn\(0, 5\) returned shape \(4, 40\)"):
        evaluate(score_fn=lambda a, b: cosine(queries[a : b - 1], docs), gold=gold, chunk_size=5)
    with pytest.raises(ValueError, match="image_ids has 3 ids but there are 40 documents"):
        evaluate(queries, docs, ["a"] * len(gold), image_ids=["a", "b", "c"])
    with pytest.raises(KeyError, match="outside the gallery"):
        evaluate(queries, docs, ["zzz"] * len(gold), image_ids=[f"img{i}" for i in range(40)])
    with pytest.raises(ValueError, match="gold is empty"):
        evaluate(queries[:0], docs, gold[:0])
    with pytest.raises(ValueError, match="ks must be positive"):
        evaluate(queries, docs, gold, ks=(0, 5))


def test_import_stays_light_with_lazy_exports() -> None:
    code = ("import sys, rsretrieval\n"
            "light = [m for m in sys.modules if m.split('.')[0] in ('torch', 'ray', 'open_clip')]\n"
            "from rsretrieval import evaluate, CosineScorer, load_dataset, RSDataset, load_config, list_backbones\n"
            f"print(light, [m for m in {HEAVY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] []", out.stdout


def test_every_public_name_resolves() -> None:
    names = [n for n in rsretrieval.__all__ if n != "__version__"]
    assert len(names) == len(set(names))
    for name in names:
        assert getattr(rsretrieval, name) is not None, name
    assert set(rsretrieval.__all__) <= set(dir(rsretrieval))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        rsretrieval.nope  # noqa: B018
    for name in ("evaluate", "CosineScorer", "LateInteractionScorer", "PackedVectors", "HungarianScorer",
                 "GraphMatchingNetwork", "load_dataset", "evaluation_split", "RSDataset", "load_config",
                 "DatasetConfig", "BackboneConfig", "BenchmarkConfig", "list_backbones", "load_backbone"):
        assert name in names


def test_static_imports_agree_with_lazy_exports() -> None:
    """The ``if TYPE_CHECKING:`` imports (for IDEs) name the same objects the lazy table resolves."""
    tree = ast.parse(Path(rsretrieval.__file__).read_text(encoding="utf-8"))
    guard = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
    static = {a.name: node.module for node in guard.body if isinstance(node, ast.ImportFrom) for a in node.names}
    assert set(static) == set(rsretrieval.__all__) - {"__version__"}
    for name, module in static.items():
        assert getattr(rsretrieval, name) is getattr(importlib.import_module(module), name), name
