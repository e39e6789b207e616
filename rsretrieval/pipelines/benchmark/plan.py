"""The benchmark as data: a config becomes a :class:`Plan`, an ordered list of steps (stages and the
cells they score) that one executor (:mod:`rsretrieval.pipelines.benchmark.run`) walks.

A :class:`Cell` names everything its results row is keyed by (dataset, variant, backbone, mode,
crops, graphs, similarity, training) plus how it is scored: the full score matrix, or the V2V
shortlist of a backbone reranked (``eval.shortlist_k``), and the stages it needs. The plan is built
from the config alone (no data is read), so ``--plan`` can print it before anything runs; what the
plan cannot know (a dataset without a caption variant, a checkpoint without a head) is decided when
the cell is scored, and a planned cell that produced no row is listed in the run's footnotes.

Step order = the order of the results rows: per dataset, its data stages, then G2G on full matrices
(it does not depend on a backbone), then per backbone: embedding, V2V and the scene modes, the
reranked G2G cells (first backbone's shortlist), VG2VG training and VG2VG cells.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rsretrieval.config import GRAPH_MODES, SCENE_IMAGE_MODES, BenchmarkConfig, DatasetConfig

StepKind = Literal["data", "graphs", "embed", "train_vg2vg", "score", "models"]
# formats whose datasets carry ground-truth image graphs (the 'oracle' source) and can feed the simulated VLM
FORMATS_WITH_GRAPHS = ("synthrs",)


@dataclass(frozen=True)
class Cell:
    """One results row to produce."""

    dataset: str
    variant: str
    backbone: str  # image backbone; for G2G the node embedder (G2G does not use the image backbone)
    mode: str
    crops: str = "-"  # crop name in the results ('uniform', 'segments', 'sam2')
    graphs: str = "-"  # image-graph source label ('simulated-vlm', a Gemini model, 'oracle', 'boxes-...')
    similarity: str = "cosine"
    training: str = "none"  # none | vanilla | trained | untrained (graph node embeddings / GMN)
    crop_method: str | None = None  # config name of the crop method ('uniform', 'regions')
    embeddings: str = "-"  # graph node embeddings kind: vanilla | trained
    rerank_of: str | None = None  # backbone whose V2V shortlist is reranked; None = full score matrix
    needs: tuple[str, ...] = ()  # names of the steps it needs

    def keys(self) -> dict[str, str]:
        """The results row's key columns."""
        return {"dataset": self.dataset, "variant": self.variant, "backbone": self.backbone, "mode": self.mode,
                "crops": self.crops, "graphs": self.graphs, "similarity": self.similarity, "training": self.training}

    @property
    def scoring(self) -> str:
        return "full matrix" if self.rerank_of is None else f"rerank V2V top-k of {self.rerank_of}"


@dataclass
class Step:
    """One stage of the run (``cells`` empty) or a group of cells scored together (kind ``score``)."""

    kind: StepKind
    dataset: str
    backbone: str | None = None
    cells: list[Cell] = field(default_factory=list)
    what: str = ""  # one line for people

    @property
    def name(self) -> str:
        return ":".join(p for p in (self.kind, self.dataset, self.backbone) if p)


@dataclass
class Plan:
    """Every step of a run, in order, and the cells they score."""

    steps: list[Step]
    generated_graphs: str  # label of generated image graphs: 'simulated-vlm' offline, else the Gemini model

    @property
    def cells(self) -> list[Cell]:
        return [c for s in self.steps for c in s.cells]

    def stages(self) -> Iterator[Step]:
        return (s for s in self.steps if s.kind != "score")


def vector_cells(cfg: BenchmarkConfig) -> list[tuple[str, str | None]]:
    """(mode, crop method or None) of every V2V / scene-mode cell, in the order of the config."""
    out: list[tuple[str, str | None]] = []
    for mode in cfg.modes:
        if mode in GRAPH_MODES:
            continue
        out += [(mode, m) for m in cfg.image_scenes.methods] if mode in SCENE_IMAGE_MODES else [(mode, None)]
    return out


def crop_name(cfg: BenchmarkConfig, method: str) -> str:
    from rsretrieval.scenes.segmenters import region_method

    return "uniform" if method == "uniform" else region_method(cfg.image_scenes.regions)


def graph_cell_kinds(similarities: list[str], embeddings: str, has_model: bool, model_global: bool, vg2vg: bool,
                     untrained_gmn: bool, train_enabled: bool) -> list[tuple[str, str]]:
    """(similarity, training) of the graph cells of one source x node-embedding kind x variant.

    Hungarian always scores vanilla nodes, and trained nodes when a model exists; a GMN cell needs a
    trained or given model (for VG2VG one that reads the global cosine); a seeded untrained GMN only
    when asked for with training off (its rows say it is no result).
    """
    if embeddings == "trained" and not has_model:
        return []
    out = []
    for sim in similarities:
        if sim == "hungarian":
            out.append((sim, embeddings))
        elif has_model and (not vg2vg or model_global):
            out.append((sim, embeddings))
        elif embeddings == "vanilla" and untrained_gmn and not train_enabled:
            out.append((sim, "untrained"))
    return out


def image_graph_sources(cfg: BenchmarkConfig, dcfg: DatasetConfig) -> list[str]:
    """Labels of the image-graph sources a dataset will have, in the order they are built."""
    gm, out = cfg.graph_matching, []
    if "generated" in gm.image_graphs and (cfg.generation.backend == "gemini" or dcfg.format in FORMATS_WITH_GRAPHS):
        out.append(generated_label(cfg))
    if "oracle" in gm.image_graphs and dcfg.format in FORMATS_WITH_GRAPHS:
        out.append("oracle")
    if "boxes" in gm.image_graphs:
        from rsretrieval.pipelines.benchmark.box_graphs import box_source_label

        if (label := box_source_label(dcfg)) is not None:
            out.append(label)
    return out


def generated_label(cfg: BenchmarkConfig) -> str:
    return "simulated-vlm" if cfg.generation.backend == "offline" else cfg.generation.model


def node_embedder_name(cfg: BenchmarkConfig) -> str:
    """The node embedder's name as G2G rows carry it in the backbone column."""
    from rsretrieval.graphs.embedder import embedder_name

    return embedder_name(cfg.graph_matching.embedder.model)


def checkpoint_embeddings(cfg: BenchmarkConfig) -> str | None:
    """Node embeddings ('vanilla' / 'trained') the configured ``gmn_checkpoint`` was trained with, or None."""
    path = cfg.graph_matching.gmn_checkpoint
    if path is None:
        return None
    if path not in _CHECKPOINT_EMBEDDINGS:
        from rsretrieval.training.graph_model import load_matcher_file

        _CHECKPOINT_EMBEDDINGS[path] = load_matcher_file(path)["embeddings"]
    return _CHECKPOINT_EMBEDDINGS[path]


_CHECKPOINT_EMBEDDINGS: dict[Path, str] = {}


def _graph_cells(cfg: BenchmarkConfig, dcfg: DatasetConfig, mode: str, backbone: str | None, row_backbone: str,
                 rerank_of: str | None, needs: tuple[str, ...]) -> list[Cell]:
    gm = cfg.graph_matching
    out = []
    for source in image_graph_sources(cfg, dcfg):
        for embeddings in gm.embeddings:
            has_model = gm.train.enabled or checkpoint_embeddings(cfg) == embeddings
            for variant in cfg.variants:
                kinds = graph_cell_kinds(list(gm.similarities), embeddings, has_model, True, backbone is not None,
                                         gm.untrained_gmn, gm.train.enabled)
                out += [Cell(dcfg.name, variant, row_backbone, mode, graphs=source, similarity=sim, training=training,
                             embeddings=embeddings, rerank_of=rerank_of, needs=needs) for sim, training in kinds]
    return out


def build_plan(cfg: BenchmarkConfig) -> Plan:
    """Every step and cell of ``cfg``, in the order the executor runs and reports them."""
    steps: list[Step] = []
    shortlist = cfg.eval.shortlist_k is not None
    agg = cfg.late_interaction.aggregation
    graph_modes = [m for m in cfg.modes if m in GRAPH_MODES]
    for dcfg in cfg.datasets:
        ds = dcfg.name
        steps.append(Step("data", ds, what=f"{ds} ({dcfg.format}, {dcfg.split} split): read, checked, generated "
                          "captions and requested tasks, crops and text scenes"))
        if graph_modes:
            training = " + G2G matchers trained" if cfg.graph_matching.train.enabled else ""
            steps.append(Step("graphs", ds, what=f"{ds}: query and image graphs, node embeddings{training}"))
        if "g2g" in graph_modes and not shortlist:
            steps.append(Step("score", ds, None, _graph_cells(cfg, dcfg, "g2g", None, node_embedder_name(cfg), None,
                                                              (f"graphs:{ds}",)), what="G2G (full matrices)"))
        for k, bcfg in enumerate(cfg.backbones):
            b = bcfg.name
            embed = f"embed:{ds}:{b}"
            steps.append(Step("embed", ds, b, what=f"{ds} x {b}: images, captions, crops, text scenes embedded"))
            cells = [Cell(ds, variant, b, mode, crops=crop_name(cfg, m) if m else "-",
                          similarity="cosine" if mode == "v2v" else agg, crop_method=m,
                          rerank_of=b if shortlist else None, needs=(f"data:{ds}", embed))
                     for variant in cfg.variants for mode, m in vector_cells(cfg)]
            steps.append(Step("score", ds, b, cells, what="V2V and scene modes"))
            if "g2g" in graph_modes and shortlist and k == 0:
                steps.append(Step("score", ds, b, _graph_cells(cfg, dcfg, "g2g", None, node_embedder_name(cfg), b,
                                                               (f"graphs:{ds}", embed)), what=f"G2G reranking {b}'s V2V"))
            if "vg2vg" in graph_modes:
                needs = (f"graphs:{ds}", embed)
                if cfg.graph_matching.train.enabled:
                    steps.append(Step("train_vg2vg", ds, b, what=f"{ds} x {b}: VG2VG matchers trained end to end"))
                    needs += (f"train_vg2vg:{ds}:{b}",)
                steps.append(Step("score", ds, b, _graph_cells(cfg, dcfg, "vg2vg", b, b, b if shortlist else None, needs),
                                  what="VG2VG"))
        if graph_modes and cfg.graph_matching.train.enabled:
            steps.append(Step("models", ds, what=f"{ds}: trained graph models written to the run folder"))
    return Plan(steps, generated_label(cfg))
