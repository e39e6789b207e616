"""G2G and VG2VG in the benchmark (thesis sec. 5.3.2, 5.3.4; Tables 8-10).

Per dataset split: query graphs (A.1.3 text graphs of every caption) and image graphs from each
configured source (``generated``: the generation backend - the simulated VLM offline, Gemini
online; ``oracle``: ground-truth graphs where the dataset has them) are turned into node/edge texts,
embedded once with the node embedder (cached per text), optionally passed through a graph encoder,
and scored with every configured similarity:

* Hungarian (G2G) and ``(1 - w) * cosine + w * Hungarian`` (VG2VG, our combination: the thesis does
  not define a Hungarian VG2VG; ``graph_matching.vg2vg_weight``);
* GMN (eq. 5 without / with the global cosine), trained on the train split (graph_training) or
  loaded from ``gmn_checkpoint``; ``training`` says which node embeddings: ``vanilla`` (frozen text
  embeddings; for GMN: a GMN trained on them) or ``trained`` (the trained graph encoder). A seeded
  untrained GMN (``untrained_gmn``, training off) gives ``training=untrained`` rows: no result.

G2G does not depend on the image backbone: its rows carry the node embedder as ``backbone``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from rsretrieval.config import BenchmarkConfig
from rsretrieval.data.schema import RSDataset
from rsretrieval.generation.offline import NoOfflineBackend
from rsretrieval.graphs.schema import TextGraph
from rsretrieval.graphs.schema import ImageSceneGraph
from rsretrieval.graphs.table import GraphTable
from rsretrieval.pipelines.benchmark.plan import graph_cell_kinds
from rsretrieval.pipelines.stages.generation_tasks import (ground_truth_graphs, iter_values, ok_outputs, run_task, save_outputs,
                                                           task_inputs)

log = logging.getLogger(__name__)


@dataclass
class DatasetGraphs:
    """Graph elements of one dataset split: per caption, and per image for every source."""

    captions: GraphTable | None  # one graph per caption, in the split's captions order
    images: dict[str, GraphTable]  # source label -> one graph per image, in the split's images order
    generation: list[dict[str, Any]] = field(default_factory=list)  # accounting rows
    notes: list[str] = field(default_factory=list)
    stats: list[dict[str, Any]] = field(default_factory=list)  # GCR (A.2.3) and sizes per graph set
    generated_label: str = ""  # source label of the generated image graphs ('simulated-vlm' or the model)

    def keep(self, keep: Callable[[Any, str], Any], dataset: str) -> None:
        """The graph tables as ``keep`` keeps a run's tables (memory-mapped, see RunContext.keep)."""
        if self.captions is not None:
            self.captions = GraphTable(keep(self.captions.table, f"{dataset}-query_graphs"))
        self.images = {s: GraphTable(keep(t.table, f"{dataset}-image_graphs-{s}")) for s, t in self.images.items()}


def graph_set_stats(dataset: str, name: str, graphs: list[Any]) -> dict[str, Any]:
    """Collision rate (thesis A.2.3, Table 19) and size statistics (Figure 20) of one graph set."""
    from rsretrieval.graphs.stats import collision_stats, size_stats

    col, size = collision_stats(graphs), size_stats(graphs)
    return {"dataset": dataset, "graphs": name, "n_graphs": col["n_graphs"], "n_empty": size["n_empty"],
            "gcr": col["gcr"], "n_unique": col["n_unique"], "nodes_mean": size["nodes"]["mean"],
            "nodes_median": size["nodes"]["median"], "nodes_max": size["nodes"]["max"],
            "edges_mean": size["edges"]["mean"], "edges_median": size["edges"]["median"],
            # nodes per graph -> number of graphs, as JSON text in the CSV: Figure 20 is drawn from it
            "nodes_histogram": json.dumps(size["nodes"]["histogram"], sort_keys=True)}


def prepare_graphs(cfg: BenchmarkConfig, ds: RSDataset) -> DatasetGraphs:
    """Generate (or load from the store / offline stand-ins) every graph the graph modes need."""
    from rsretrieval.graphs.elements import GraphElements, text_graph_elements

    out = DatasetGraphs(None, {})
    inputs = pa.table({"input_id": ds.captions["caption_id"], "text": ds.captions["text"]})
    rows, outputs = run_task(cfg, ds, "text_graph", inputs)
    save_outputs(cfg, ds.name, "text_graph", outputs)
    out.generation += [{"dataset": ds.name, **r} for r in rows]
    gens = sorted(pc.unique(outputs["generator"]).to_pylist())
    answers = ok_outputs(outputs, ds.captions["caption_id"])
    del outputs  # the parsed answers, aligned to the captions, are all that is kept
    empty = GraphElements([], [], [])
    out.captions = GraphTable.build(iter_values(ds.captions["caption_id"]),
                                    (text_graph_elements(TextGraph.model_validate_json(a)) if a is not None else empty
                                     for a in iter_values(answers)))
    out.notes.append(f"{ds.name}: query graphs by {', '.join(gens)}; {len(answers) - answers.null_count}/{len(answers)} "
                     "captions parsed")
    del answers
    variants = ds.captions["variant"]
    for variant in sorted(set(pc.unique(variants).to_pylist())):
        rows_of = np.flatnonzero(pc.equal(variants, variant).to_numpy(zero_copy_only=False))
        out.stats.append(graph_set_stats(ds.name, f"query:{variant}", out.captions.take(rows_of)))
    add_image_graphs(cfg, ds, out)
    for source, by_image in out.images.items():
        out.stats.append(graph_set_stats(ds.name, f"image:{source}", by_image))
    return out


def add_image_graphs(cfg: BenchmarkConfig, ds: RSDataset, out: DatasetGraphs, save: bool = True) -> None:
    """The image graphs of every configured source (``generated``, ``oracle``, ``boxes``) into ``out.images``
    (``save``: also write them to the run folder's generated/)."""
    from rsretrieval.graphs.elements import GraphElements, image_graph_elements

    gm, empty = cfg.graph_matching, GraphElements([], [], [])
    if "generated" in gm.image_graphs:
        try:
            rows, outputs = run_task(cfg, ds, "image_graph", task_inputs(ds, "image_graph", "", None))
        except NoOfflineBackend as exc:
            out.notes.append(f"{ds.name}: no generated image graphs ({exc})")
        else:
            if save:
                save_outputs(cfg, ds.name, "image_graph", outputs)
            out.generation += [{"dataset": ds.name, **r} for r in rows]
            answers = ok_outputs(outputs, ds.images["image_id"])
            label = "simulated-vlm" if cfg.generation.backend == "offline" else cfg.generation.model
            out.generated_label = label
            out.images[label] = GraphTable.build(
                iter_values(ds.images["image_id"]),
                (image_graph_elements(ImageSceneGraph.model_validate_json(a)) if a is not None else empty
                 for a in iter_values(answers)))
            n_ok = len(answers) - answers.null_count
            out.notes.append(f"{ds.name}: image graphs '{label}' for {n_ok}/{ds.images.num_rows} images"
                             + (" (simulated from the ground truth with VLM-like errors, not a model)" if label == "simulated-vlm" else ""))
    truth = ground_truth_graphs(ds) if "oracle" in gm.image_graphs else {}
    if truth:
        ids = ds.images["image_id"]
        out.images["oracle"] = GraphTable.build(iter_values(ids), (image_graph_elements(truth[i]) if i in truth else empty
                                                                   for i in iter_values(ids)))
        out.notes.append(f"{ds.name}: 'oracle' rows use the ground-truth image graphs (measures matching, not generation)")
    if "boxes" in gm.image_graphs:
        from rsretrieval.pipelines.benchmark.box_graphs import box_graphs

        label, by_id, notes = box_graphs(cfg, ds)
        out.notes += notes
        if label is not None:
            ids = ds.images["image_id"]
            out.images[label] = GraphTable.build(iter_values(ids), (image_graph_elements(by_id[i]) if i in by_id else empty
                                                                    for i in iter_values(ids)))


@dataclass
class GraphCell:
    """One graph cell to score: similarity, training label, its GMN (None for Hungarian), the matcher whose
    encoder gives the node embeddings (None = vanilla), and a tag naming those node embeddings."""

    similarity: str
    training: str
    gmn: Any
    encoder: Any
    nodes_tag: str


class GraphScoring:
    """Node embeddings of every graph set (cached per text), the trained models, and the similarity modules.

    Per image-graph source and node-embedding kind (``graph_matching.embeddings``), :meth:`variants`
    says which (similarity, training label, model) cells exist: Hungarian on vanilla nodes always;
    Hungarian on trained nodes and GMN cells when a model was trained (``models``) or given
    (``gmn_checkpoint``); a seeded untrained GMN only when asked for (``untrained_gmn``).
    """

    def __init__(self, cfg: BenchmarkConfig) -> None:
        from rsretrieval.graphs.embedder import CachedTextEmbedder, load_text_embedder

        self.cfg = cfg
        self.gm = cfg.graph_matching
        self.embedder = CachedTextEmbedder(load_text_embedder(self.gm.embedder), Path(cfg.cache_dir) / "node_embeddings")
        self.models: Any = None  # GraphModels of the current dataset (graph_training), set by the benchmark
        self.checkpoint: dict[str, Any] | None = None
        if self.gm.gmn_checkpoint:
            from rsretrieval.training.graph_model import load_matcher_file

            self.checkpoint = load_matcher_file(self.gm.gmn_checkpoint)
        self._untrained: dict[bool, Any] = {}
        self._from_checkpoint: dict[str, Any] = {}  # head -> GraphMatcher of gmn_checkpoint (None: no such head)
        self._hungarian: dict[str, tuple[np.ndarray, float]] = {}  # memo -> (matrix, seconds to compute)
        self.notes: list[str] = []
        if "gmn" in self.gm.similarities and not (self.gm.train.enabled or self.checkpoint or self.gm.untrained_gmn):
            self.notes.append("GMN cells skipped: training disabled and no graph_matching.gmn_checkpoint; an untrained "
                              "GMN is no result")

    def matcher(self, source: str, embeddings: str, variant: str | None, backbone: str | None = None) -> Any:
        """The trained matcher of a G2G cell (``backbone`` None) or a backbone's VG2VG cell, or None.

        A ``gmn_checkpoint`` serves every variant; trained models are per caption variant.
        """
        if self.checkpoint is not None and self.checkpoint["embeddings"] == embeddings:
            from rsretrieval.training.graph_model import matcher_from_state

            head = backbone or "g2g"
            if head not in self._from_checkpoint:  # built once per head, not per cell
                try:
                    self._from_checkpoint[head] = matcher_from_state(self.checkpoint, head)
                except KeyError:
                    self._from_checkpoint[head] = None
            return self._from_checkpoint[head]
        if self.models is None:
            return None
        if backbone:
            return self.models.vg2vg.get((source, embeddings, variant, backbone))
        return self.models.g2g.get((source, embeddings, variant))

    def untrained(self, use_global: bool) -> Any:
        if use_global not in self._untrained:
            from rsretrieval.matching.gmn import GraphMatchingNetwork

            cfg = self.gm.gmn.model_copy(update={"use_global": use_global})
            self._untrained[use_global] = GraphMatchingNetwork(cfg, seed=self.gm.seed).eval()
        return self._untrained[use_global]

    def variants(self, source: str, embeddings: str, variant: str, backbone: str | None) -> list[GraphCell]:
        """Every cell of this source x embeddings x caption variant (G2G, or VG2VG of ``backbone``);
        which ones exist: :func:`~rsretrieval.pipelines.benchmark.plan.graph_cell_kinds`.

        A cell's nodes come from its mode's matcher: the G2G matcher for G2G, the backbone's end-to-end
        VG2VG matcher for VG2VG (Hungarian included, so GMN and Hungarian cells compare on the same nodes).
        """
        model = self.matcher(source, embeddings, variant, backbone)
        if embeddings == "trained" and model is None and backbone:  # e.g. a checkpoint without this VG2VG head
            model = self.matcher(source, embeddings, variant)
        kinds = graph_cell_kinds(list(self.gm.similarities), embeddings, model is not None,
                                 model is not None and model.gmn_cfg.use_global, backbone is not None,
                                 self.gm.untrained_gmn, self.gm.train.enabled)
        encoder = model if embeddings == "trained" else None
        tag = "vanilla" if encoder is None else f"trained-{variant}-{backbone or 'g2g'}"
        out = []
        for sim, training in kinds:
            if sim == "hungarian":
                out.append(GraphCell(sim, training, None, encoder, tag))
            elif training == "untrained":
                out.append(GraphCell(sim, training, self.untrained(backbone is not None), None, tag))
            else:
                out.append(GraphCell(sim, training, model.gmn, encoder, tag))
        return out

    def nodes(self, elements: list[Any], encoder: Any = None) -> Any:
        """PackedVectors of node embeddings of ``elements``: vanilla, or through ``encoder`` (a GraphMatcher)."""
        from rsretrieval.graphs.tensors import embed_graphs

        batch = embed_graphs(list(elements), self.embedder)
        if encoder is None:
            return batch.nodes
        with torch.no_grad():
            return encoder.encode(batch)

    def score(self, similarity: str, mode: str, q: Any, d: Any, cosine: np.ndarray | None, gmn: Any = None,
              memo: str = "") -> tuple[np.ndarray, float]:
        """(Q, D) scores of one cell and the seconds they cost; ``memo`` names the graph sets so G2G and
        VG2VG share one Hungarian matrix (a shared matrix still reports the seconds it took to compute)."""
        t0 = time.perf_counter()
        if similarity == "hungarian":
            from rsretrieval.matching.hungarian import HungarianScorer

            if not memo or memo not in self._hungarian:  # (Q, D) float32 each: small at paper sizes
                t1 = time.perf_counter()
                self._hungarian[memo] = (HungarianScorer(self.gm.hungarian).score(q, d), time.perf_counter() - t1)
            graph, seconds = self._hungarian[memo]
            if mode == "g2g":
                return graph, seconds
            w = self.gm.vg2vg_weight
            t2 = time.perf_counter()
            return (1 - w) * cosine + w * graph, seconds + time.perf_counter() - t2
        sim_vec = torch.as_tensor(cosine, dtype=torch.float32) if mode == "vg2vg" else None
        with torch.no_grad():
            out = gmn.score_matrix(q, d, sim_vec, self.gm.gmn.chunk_size).cpu().numpy()
        return out, time.perf_counter() - t0
