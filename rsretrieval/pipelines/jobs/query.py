"""Ad-hoc retrieval over an indexed dataset: ``rsretrieval query "eleven round tanks ..."``.

The index is what the benchmark already computed and cached for the configured dataset split and
backbone (image embeddings, image-scene embeddings); anything missing is computed once with the
same Ray stages and cached. Queries are embedded on the spot with the backbone's text encoder:

* ``v2v``: cosine of the query vector and every image vector;
* ``s2v`` / ``s2s``: the query split into text scenes (the configured offline splitter; the full query
  kept as scene 0) and matched by Q-MAM late interaction against the image vector / image scenes;
* ``v2s``: the query vector against every image's scene set;
* ``g2g`` / ``vg2vg``: the query's text graph (A.1.3: the offline heuristic parser, or Gemini when
  ``generation.backend=gemini``: stored, never paid twice) against the image graphs of one source
  (``generated`` / ``oracle``), Hungarian on vanilla node embeddings, or the GMN of
  ``graph_matching.gmn_checkpoint`` (a run's ``graph_models/*.pt``); VG2VG adds the global cosine.

:func:`format_matrix` prints the query x image score matrix that research repos' ``infer.py`` shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rsretrieval.config import BenchmarkConfig

QUERY_MODES = ("v2v", "v2s", "s2v", "s2s", "g2g", "vg2vg")


@dataclass
class QueryIndex:
    """Image side of one dataset split x backbone, plus the loaded text encoder."""

    dataset: str
    backbone: str
    image_ids: list[str]
    uris: list[str]
    image_vectors: np.ndarray  # (N, D), unit length
    loaded: Any  # LoadedBackbone
    image_scenes: dict[str, Any] = field(default_factory=dict)  # crop method -> PackedVectors
    ds: Any = None  # the RSDataset split (ground-truth graphs, generation inputs)
    graphs: dict[str, Any] = field(default_factory=dict)  # image-graph source -> GraphTable in image order
    graph_scoring: Any = None  # GraphScoring (node embedder, checkpoint models), built for graph modes


def build_index(cfg: BenchmarkConfig, dataset: str | None = None, backbone: str | None = None,
                scene_methods: tuple[str, ...] = (), graphs: bool = False) -> QueryIndex:
    """Load (or compute once and cache) the image side of ``dataset`` x ``backbone`` (default: the first);
    ``graphs``: also the image graphs of every configured source (for g2g / vg2vg)."""
    from rsretrieval.data.registry import evaluation_split, load_dataset
    from rsretrieval.encoders.loader import load_backbone
    from rsretrieval.encoders.registry import get_backbone_spec
    from rsretrieval.pipelines.runtime.ray_session import init_ray
    from rsretrieval.pipelines.runtime.checkpoints import resolve_checkpoint
    from rsretrieval.pipelines.stages.embed import embed_table, read_embeddings
    from rsretrieval.pipelines.stages.scene_crops import embed_image_scenes, image_scenes, read_packed

    dcfg = _pick(cfg.datasets, dataset, "dataset")
    bcfg = _pick(cfg.backbones, backbone, "backbone")
    init_ray(cfg.ray)
    ds = evaluation_split(load_dataset(dcfg, cfg.cache_dir), dcfg)
    checkpoint = resolve_checkpoint(bcfg, cfg)
    img_dir, _ = embed_table("images", ds.images, bcfg.name, checkpoint, cfg.embed, cfg.cache_dir)
    ids = ds.images["image_id"].to_pylist()
    vecs = read_embeddings(img_dir, ids)
    vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    index = QueryIndex(dcfg.name, bcfg.name, ids, ds.images["uri"].to_pylist(), vecs.astype(np.float32),
                       load_backbone(get_backbone_spec(bcfg.name), checkpoint))
    for method in scene_methods:
        table = image_scenes(ds.images, method, cfg.image_scenes, cfg.cache_dir)
        path, _ = embed_image_scenes(ds.images, table, method, bcfg.name, checkpoint, cfg.embed, cfg.cache_dir)
        index.image_scenes[method] = read_packed(path, ids, table, "image_id")
    index.ds = ds
    if graphs:
        from rsretrieval.pipelines.benchmark.graph_modes import DatasetGraphs, GraphScoring, add_image_graphs

        found = DatasetGraphs(None, {})
        add_image_graphs(cfg, ds, found, save=False)
        index.graphs = found.images
        index.graph_scoring = GraphScoring(cfg)
    return index


def _graph_scores(index: QueryIndex, cfg: BenchmarkConfig, texts: list[str], mode: str, source: str | None,
                  similarity: str) -> np.ndarray:
    """G2G / VG2VG scores of the query texts against one image-graph source."""
    import hashlib

    import pyarrow as pa

    from rsretrieval.graphs.schema import TextGraph
    from rsretrieval.graphs.elements import text_graph_elements
    from rsretrieval.pipelines.stages.generation_tasks import run_task

    if not index.graphs:
        raise ValueError("no image graphs in the index: build it with graphs=True (and graph_matching.image_graphs "
                         "naming a source this dataset has: 'oracle' needs ground-truth graphs, 'generated' a backend)")
    source = source or next(iter(index.graphs))
    if source == "generated":
        source = next((s for s in index.graphs if s != "oracle"), source)
    if source not in index.graphs:
        raise ValueError(f"no '{source}' image graphs for {index.dataset} (have: {sorted(index.graphs)})")
    ids = [f"query:{hashlib.sha256(t.encode()).hexdigest()[:16]}" for t in texts]
    _, outputs = run_task(cfg, index.ds, "text_graph", pa.table({"input_id": ids, "text": texts}))
    records = {r["owner_id"]: r for r in outputs.to_pylist()}  # a handful of query texts
    bad = [t for i, t in zip(ids, texts) if records[i]["status"] != "ok"]
    if bad:
        raise ValueError(f"no query graph for {bad[0]!r}: {records[ids[texts.index(bad[0])]]['error']}")
    scoring = index.graph_scoring
    q_el = [text_graph_elements(TextGraph.model_validate_json(records[i]["output"])) for i in ids]
    d_el = index.graphs[source].elements()  # in the index's image order
    gmn = None
    if similarity == "gmn":
        model = scoring.matcher(source, scoring.checkpoint["embeddings"] if scoring.checkpoint else "vanilla", None,
                                index.backbone if mode == "vg2vg" else None)
        if model is None:
            raise ValueError(f"{mode} with the GMN needs graph_matching.gmn_checkpoint: a run's graph_models/*.pt "
                             f"with a {'VG2VG head for ' + index.backbone if mode == 'vg2vg' else 'G2G GMN'}")
        gmn = model.gmn
    encoder = model if gmn is not None and scoring.checkpoint["embeddings"] == "trained" else None
    q, d = scoring.nodes(q_el, encoder), scoring.nodes(d_el, encoder)
    cosine = None
    if mode == "vg2vg":
        from rsretrieval.encoders.loader import encode_texts

        cosine = encode_texts(index.loaded, texts) @ index.image_vectors.T
    scores, _ = scoring.score(similarity, mode, q, d, cosine, gmn)
    return np.asarray(scores, dtype=np.float32)


def _pick(items: list[Any], name: str | None, what: str) -> Any:
    if name is None:
        return items[0]
    for item in items:
        if item.name == name:
            return item
    raise ValueError(f"no {what} named {name!r} in the config (have: {[i.name for i in items]})")


def query_scores(index: QueryIndex, cfg: BenchmarkConfig, texts: list[str], mode: str = "v2v",
                 crops: str = "uniform", graphs: str | None = None, similarity: str = "hungarian") -> np.ndarray:
    """(len(texts), n_images) scores of ``mode`` (graph modes: image graphs ``graphs``, ``similarity``
    hungarian or gmn)."""
    from rsretrieval.encoders.loader import encode_texts
    from rsretrieval.matching.late_interaction import LateInteractionScorer, PackedVectors
    from rsretrieval.scenes.text_scenes import make_text_scene_generator

    if mode not in QUERY_MODES:
        raise ValueError(f"mode {mode!r}: the query tool supports {QUERY_MODES}")
    if mode == "v2v":
        return encode_texts(index.loaded, texts) @ index.image_vectors.T
    if mode in ("g2g", "vg2vg"):
        return _graph_scores(index, cfg, texts, mode, graphs, similarity)
    if mode in ("s2v", "s2s"):
        splitter = make_text_scene_generator(cfg.text_scenes)
        sets = [[t, *splitter.generate([t])[0]][: cfg.text_scenes.max_scenes + 1] for t in texts]
        q = PackedVectors.from_lists([encode_texts(index.loaded, s) for s in sets])
    else:
        q = PackedVectors.singletons(encode_texts(index.loaded, texts))
    if mode in ("v2s", "s2s"):
        if crops not in index.image_scenes:
            raise ValueError(f"no '{crops}' image scenes in the index (built with: {sorted(index.image_scenes)})")
        d = index.image_scenes[crops]
    else:
        d = PackedVectors.singletons(torch.as_tensor(index.image_vectors))
    scorer = LateInteractionScorer(q, d, cfg.late_interaction.aggregation, "cpu")
    return scorer(0, len(q)).float().numpy()


def ranked(index: QueryIndex, scores: np.ndarray, top_k: int = 5) -> list[list[dict[str, Any]]]:
    """Per query: the top-k images (rank, image_id, score, uri)."""
    out = []
    for row in scores:
        order = np.argsort(-row, kind="stable")[:top_k]
        out.append([{"rank": r + 1, "image_id": index.image_ids[i], "score": float(row[i]), "uri": index.uris[i]}
                    for r, i in enumerate(order)])
    return out


def format_matrix(scores: np.ndarray, row_names: list[str], col_names: list[str]) -> str:
    """The 'Similarity Score Matrix (Text-Image)' printout of research repos' infer.py."""
    width = max(6, *(len(c) for c in col_names))
    lines = ["Similarity Score Matrix (Text-Image):", " " * 14 + "".join(f"{c:>{width + 1}}" for c in col_names)]
    for name, row in zip(row_names, scores):
        lines.append(f"{name + ':':<14}" + "".join(f"{v:>{width + 1}.2f}" for v in row))
    return "\n".join(lines)
