"""Scoring G2G and VG2VG cells (thesis sec. 5.3.2, 5.3.4): one :class:`GraphCellScorer` per dataset x
mode x backbone holds the node sets its cells share (vanilla nodes are embedded once for every cell),
and scores one planned :class:`~rsretrieval.pipelines.benchmark.plan.Cell` at a time, on full matrices
or by reranking a V2V shortlist (``eval.shortlist_k``)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from rsretrieval.evaluation.retrieval import evaluate_cell
from rsretrieval.graphs.table import GraphTable
from rsretrieval.pipelines.benchmark.context import DatasetState, RunContext
from rsretrieval.pipelines.benchmark.plan import Cell


class GraphCellScorer:
    """G2G cells (``backbone`` None) or one backbone's VG2VG cells of a dataset split.

    ``vectors``: caption variant -> the global vectors of a backbone (``FullVectors`` / ``StoredVectors``):
    VG2VG mixes in their cosine; on the two-stage path every cell reranks their V2V shortlist.
    """

    def __init__(self, ctx: RunContext, state: DatasetState, backbone: str | None, vectors: dict[str, Any] | None) -> None:
        self.ctx, self.state, self.backbone, self.vectors = ctx, state, backbone, vectors or {}
        self.mode = "g2g" if backbone is None else "vg2vg"
        self.scoring = ctx.graph_scoring
        self.image_ids = state.ds.images["image_id"].to_pylist()
        self.node_sets: dict[str, tuple[Any, float]] = {}  # name -> (node set, seconds)
        self.cosines: dict[str, np.ndarray] = {}  # variant -> (Q, D) cosine of the full-matrix VG2VG cells

    def score(self, cell: Cell) -> None:
        """Score one planned cell, or say why it has no row."""
        ctx, graphs = self.ctx, self.state.graphs
        by_image = graphs.images.get(cell.graphs)
        if by_image is None:
            ctx.skip(cell, f"no '{cell.graphs}' image graphs")
            return
        queries = self.state.queries(cell.variant)
        if queries is None:
            ctx.skip(cell, f"the split has no {cell.variant} captions")
            return
        cap_ids, gold = queries.ids, queries.gold
        specs = [s for s in self.scoring.variants(cell.graphs, cell.embeddings, cell.variant, self.backbone)
                 if (s.similarity, s.training) == (cell.similarity, cell.training)]
        if not specs:
            ctx.skip(cell, "no model for this cell (not trained, or not in graph_matching.gmn_checkpoint)")
            return
        spec, source, tag = specs[0], cell.graphs, specs[0].nodes_tag
        d, embed_seconds = self._node_set(f"{source}__{tag}__images", by_image,
                                          spec.encoder, f"nodes:image:{source}:{cell.embeddings}", len(self.image_ids))
        q, _ = self._node_set(f"{cell.variant}__{tag}__{'' if tag == 'vanilla' else source}__queries",
                              graphs.captions.take(queries.items), spec.encoder,
                              f"nodes:query:{cell.variant}:{cell.embeddings}:{source}", len(cap_ids))
        notes = self.state.base_notes + (["simulated image graphs"] if "simulated" in source else [])
        if ctx.cfg.eval.shortlist_k:
            self._score_reranked(cell, spec, q, d, cap_ids, gold, notes)
            return
        ecfg = ctx.cfg.eval
        cosine = self._cosine(cell.variant) if self.mode == "vg2vg" else None
        memo = f"{self.state.ds.name}/{source}/{cell.variant}/{tag}"
        scores, score_seconds = self.scoring.score(cell.similarity, self.mode, q, d, cosine, spec.gmn, memo)
        m = torch.as_tensor(scores)
        result = evaluate_cell(lambda s, e: m[s:e], gold, len(self.image_ids), ecfg.ks, ecfg.chunk_size,
                               ecfg.top_k_saved, (lambda s, e: m.T[s:e]) if ecfg.i2t else None)
        notes += ["untrained GMN: not a result"] if cell.training == "untrained" else []
        info = {"query_vectors": float(q.sizes.float().mean()), "image_vectors": float(d.sizes.float().mean()),
                "embed_seconds": embed_seconds, "score_seconds": score_seconds}
        ctx.record(cell, result, cap_ids, gold, self.image_ids, info, notes)

    def _cosine(self, variant: str) -> np.ndarray:
        if variant not in self.cosines:
            self.cosines[variant] = self.vectors[variant].cosine_matrix()
        return self.cosines[variant]

    def _nodes(self, name: str, elements: GraphTable, encoder: Any) -> Any:
        """Node sets in memory (full matrices), or on the two-stage path a store in the run's scratch."""
        if not self.ctx.cfg.eval.shortlist_k:
            return self.scoring.nodes(elements, encoder)
        from rsretrieval.pipelines.benchmark.two_stage import node_store, scratch_dir

        folder = (scratch_dir(self.ctx.run_dir) / "nodes"
                  / f"{self.state.ds.name}__{self.mode}__{self.backbone or '-'}__{name}")
        return node_store(lambda part: self.scoring.nodes(part, encoder), elements, folder)

    def _node_set(self, name: str, elements: GraphTable, encoder: Any, what: str, items: int) -> tuple[Any, float]:
        if name not in self.node_sets:
            t0 = time.perf_counter()
            self.node_sets[name] = (self._nodes(name, elements, encoder), time.perf_counter() - t0)
        self.ctx.ledger.add(self.state.ds.name, what, self.node_sets[name][1], items,
                            detail="node texts embedded once and cached per text")
        return self.node_sets[name]

    def _score_reranked(self, cell: Cell, spec: Any, q: Any, d: Any, cap_ids: list[str], gold: np.ndarray,
                        notes: list[str]) -> None:
        """Two-stage path: the mode's pair scorer on each query's V2V shortlist."""
        from rsretrieval.matching.hungarian import HungarianScorer
        from rsretrieval.pipelines.benchmark.two_stage import graph_pair_scorer, mean_set_size
        from rsretrieval.search.rerank import evaluate_reranked

        cfg, vectors = self.ctx.cfg, self.vectors[cell.variant]
        cosine = vectors.cosine_pairs() if self.mode == "vg2vg" else None
        scorer = graph_pair_scorer(cell.similarity, q, d, HungarianScorer(cfg.graph_matching.hungarian), spec.gmn,
                                   cosine, cfg.graph_matching.vg2vg_weight)
        t0 = time.perf_counter()
        result = evaluate_reranked(vectors.shortlist, scorer, gold, cfg.eval.ks, cfg.eval.top_k_saved)
        of = f" of {cell.rerank_of}" if self.mode == "g2g" else ""
        notes = notes + [f"reranked V2V top-{cfg.eval.shortlist_k}{of}"]
        info = {"query_vectors": mean_set_size(q), "image_vectors": mean_set_size(d),
                "score_seconds": result.score_seconds, "rerank_seconds": time.perf_counter() - t0}
        self.ctx.record(cell, result, cap_ids, gold, self.image_ids, info, notes)
