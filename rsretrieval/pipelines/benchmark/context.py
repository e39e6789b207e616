"""What one benchmark run carries from step to step: the config, the MLflow tracker, the run folder,
the stage ledger and everything the final tables are written from (rows, footnotes, accounting).

Steps take a :class:`RunContext` instead of the same six arguments each; per dataset they share a
:class:`DatasetState`, per dataset x backbone an :class:`~rsretrieval.pipelines.benchmark.vectors.EmbeddedBackbone`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rsretrieval.config import BenchmarkConfig, DatasetConfig
from rsretrieval.data.schema import RSDataset
from rsretrieval.evaluation.cost import StageLedger
from rsretrieval.evaluation.retrieval import CellResult
from rsretrieval.pipelines.benchmark.cells import record_cell
from rsretrieval.pipelines.benchmark.plan import Cell
from rsretrieval.pipelines.runtime.tracking import Tracker

log = logging.getLogger(__name__)

SYNTHETIC_NOTE = "synthrs is a procedural synthetic dataset: its numbers measure the pipeline, not real-world retrieval"


@dataclass
class RunContext:
    """One run's shared state; every step appends to it, the end of the run writes it out."""

    cfg: BenchmarkConfig
    tracker: Tracker
    run_dir: Path
    ledger: StageLedger = field(default_factory=StageLedger)  # seconds, tokens and cost per stage (Tables 13-14)
    rows: list[dict[str, Any]] = field(default_factory=list)  # one results row per scored cell
    footnotes: list[str] = field(default_factory=list)
    generation: list[dict[str, Any]] = field(default_factory=list)  # accounting rows of every generation step
    graph_stats: list[dict[str, Any]] = field(default_factory=list)  # GCR and sizes per graph set (Table 19, Fig. 20)
    training: list[dict[str, Any]] = field(default_factory=list)  # one row per trained graph model stage
    texts: dict[str, Any] = field(default_factory=dict)  # dataset -> its captions' caption_id / text table (Arrow)
    fingerprints: dict[str, str] = field(default_factory=dict)  # dataset -> content hash of the evaluated split
    skipped: list[tuple[Cell, str]] = field(default_factory=list)  # planned cells that produced no row, and why
    graph_scoring: Any = None  # GraphScoring: node embedder and similarity modules, built on first use
    memory: Any = None  # DriverMemory: the driver's peak memory per step (driver_memory.csv)
    spill: Any = None  # ArrowSpill: tables kept for the whole run, memory-mapped (None: kept in the heap)

    @property
    def per_query_dir(self) -> Path:
        return self.run_dir / "per_query"

    def record(self, cell: Cell, result: CellResult, query_ids: Any, gold: np.ndarray, image_ids: Any,
               info: dict[str, Any], notes: list[str]) -> dict[str, Any]:
        """Write one scored cell (per-query file, MLflow metrics, log line) and keep its results row."""
        row = record_cell(cell.keys(), result, query_ids, gold, image_ids, info, notes, self.tracker, self.per_query_dir)
        self.rows.append(row)
        return row

    def mark(self, step: str) -> None:
        """End of a step: its driver memory peaks (when traced)."""
        if self.memory is not None:
            self.memory.mark(step)

    def keep(self, table: Any, name: str) -> Any:
        """A table the run keeps to its end, memory-mapped when the run spills (file-backed pages, not heap)."""
        return table if self.spill is None or table is None else self.spill.map(table, name)

    def keep_dataset(self, ds: RSDataset) -> RSDataset:
        """``ds`` with its images, captions and graphs tables kept as :meth:`keep` keeps tables."""
        return RSDataset(ds.name, self.keep(ds.images, f"{ds.name}-images"), self.keep(ds.captions, f"{ds.name}-captions"),
                         self.keep(ds.graphs, f"{ds.name}-graphs"), ds.report)

    def skip(self, cell: Cell, reason: str) -> None:
        log.info("%s/%s/%s/%s: not scored (%s)", cell.dataset, cell.variant, cell.backbone, cell.mode, reason)
        self.skipped.append((cell, reason))

    def skipped_note(self) -> str:
        """Footnote naming planned cells without a row (empty when every planned cell was scored)."""
        if not self.skipped:
            return ""
        reasons: dict[str, int] = {}
        for _, reason in self.skipped:
            reasons[reason] = reasons.get(reason, 0) + 1
        return (f"{len(self.skipped)} planned cells not scored: "
                + "; ".join(f"{n} x {reason}" for reason, n in reasons.items()))


@dataclass
class Queries:
    """The captions of one variant of a split: the queries of its cells and their gold images."""

    caps: Any  # captions table of the variant
    ids: list[str]
    gold: np.ndarray  # gallery index of each query's image
    items: np.ndarray  # the variant's rows in the split's captions table (store items)


@dataclass
class DatasetState:
    """One dataset split as the steps of a run see it."""

    dcfg: DatasetConfig
    full: RSDataset  # every split (graph training reads train / val)
    ds: RSDataset  # the evaluated split after quarantine, leak removal and generated captions
    scenes: Any = None  # DatasetScenes
    graphs: Any = None  # DatasetGraphs, when a graph mode is configured
    backbones: dict[str, Any] = field(default_factory=dict)  # backbone name -> EmbeddedBackbone
    query_sets: dict[str, Queries | None] = field(default_factory=dict)  # variant -> its queries (None: no caption)

    def queries(self, variant: str) -> Queries | None:
        """The variant's queries, built once per split for every cell that scores them."""
        if variant not in self.query_sets:
            import pyarrow.compute as pc

            from rsretrieval.evaluation.retrieval import gold_indices

            mask = pc.equal(self.ds.captions["variant"], variant)
            items = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
            if len(items) == 0:
                log.info("%s: no %s captions, variant skipped", self.ds.name, variant)
                self.query_sets[variant] = None
            else:
                caps = self.ds.captions.filter(mask)
                self.query_sets[variant] = Queries(caps, caps["caption_id"].to_pylist(),
                                                   gold_indices(caps["image_id"].to_pylist(),
                                                                self.ds.images["image_id"].to_pylist()), items)
        return self.query_sets[variant]

    @property
    def synthetic(self) -> bool:
        return self.dcfg.format == "synthrs"

    @property
    def base_notes(self) -> list[str]:
        return ["synthetic data"] if self.synthetic else []
