"""``rsretrieval benchmark --plan``: the plan of a config for people, before anything runs.

For every step it says whether its output is already in the cache (``cached``), will be computed
(``to run``), or cannot be known before earlier steps ran (``?``, with why); then every cell; then the
Gemini requests, tokens and cost a run would pay (responses already in the store are not paid twice).
It reads annotation files and the cache, never images through a model, and starts no Ray, no MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsretrieval.config import GRAPH_MODES, SCENE_TEXT_MODES, BenchmarkConfig, DatasetConfig
from rsretrieval.data.schema import RSDataset
from rsretrieval.pipelines.benchmark.plan import Cell, Plan, Step


def _webdataset_extracted(dcfg: DatasetConfig, cache_dir: Path) -> bool:
    """Whether reading the webdataset shards would only read manifests (a plan never extracts them)."""
    from rsretrieval.data.registry import required_path
    from rsretrieval.data.tar_shards import is_extracted

    return is_extracted(required_path(dcfg, "annotations"), cache_dir)


@dataclass
class PlanCache:
    """What the plan's steps would find in ``cache_dir`` (loaded datasets are kept for the estimate)."""

    cfg: BenchmarkConfig
    datasets: dict[str, RSDataset | None] = field(default_factory=dict)  # evaluated split
    full: dict[str, RSDataset] = field(default_factory=dict)  # every split (graph training reads train / val)
    reasons: dict[str, str] = field(default_factory=dict)  # dataset -> why it was not read

    def dataset(self, dcfg: DatasetConfig) -> RSDataset | None:
        """The evaluated split, read from its annotations (synthrs: only when already generated)."""
        if dcfg.name not in self.datasets:
            from rsretrieval.data.registry import evaluation_split, load_dataset, synthrs_generated

            if dcfg.format == "synthrs" and not synthrs_generated(dcfg.synthrs, self.cfg.cache_dir):
                self.datasets[dcfg.name] = None
                self.reasons[dcfg.name] = "synthrs not generated yet (the first run renders it, ~15 s)"
            elif dcfg.format == "webdataset" and not _webdataset_extracted(dcfg, self.cfg.cache_dir):
                self.datasets[dcfg.name] = None
                self.reasons[dcfg.name] = "webdataset shards not extracted yet (the first run extracts them)"
            else:
                self.full[dcfg.name] = load_dataset(dcfg, self.cfg.cache_dir)
                self.datasets[dcfg.name] = evaluation_split(self.full[dcfg.name], dcfg)
        return self.datasets[dcfg.name]

    def state(self, step: Step) -> str:
        """'cached', 'to run', or '? (why)' for one non-scoring step."""
        cfg = self.cfg
        dcfg = next(d for d in cfg.datasets if d.name == step.dataset)
        if step.kind == "data":
            if dcfg.format == "synthrs":
                return "cached" if self.dataset(dcfg) is not None else "to run"
            if dcfg.format == "webdataset":
                return "reads manifests (extracted)" if self.dataset(dcfg) is not None else "to run (extracts the shards)"
            return "reads annotations"
        if step.kind == "embed":
            return self._embed_state(dcfg, step.backbone or "")
        if step.kind in ("graphs", "train_vg2vg") and cfg.graph_matching.train.enabled:
            folder = Path(cfg.cache_dir) / "graph_models"
            n = len(list(folder.glob("*.pt"))) if folder.is_dir() else 0
            return f"? (keyed by training data; {n} matchers cached)" if n else "to run"
        return "to run"

    def _embed_state(self, dcfg: DatasetConfig, backbone: str) -> str:
        from rsretrieval.pipelines.stages.embed_many import EmbedRequest, embedding_dir

        bcfg = next(b for b in self.cfg.backbones if b.name == backbone)
        checkpoint = self._checkpoint(bcfg)
        if isinstance(checkpoint, str):
            return checkpoint
        ds = self.dataset(dcfg)
        if ds is None:
            return "to run"
        tables = [EmbedRequest("images", ds.images), EmbedRequest("captions", ds.captions)]
        done = [embedding_dir(self.cfg.cache_dir, r, backbone, checkpoint).is_dir() for r in tables]
        if not all(done):
            return "to run"
        scenes = "; crops and text scenes: ?" if any(m not in GRAPH_MODES and m != "v2v" for m in self.cfg.modes) else ""
        return "cached (images, captions)" + scenes

    def _checkpoint(self, bcfg: Any) -> Path | None | str:
        """The backbone's weight file, or a state string when it is not there yet (rs-tiny trains on first use)."""
        if bcfg.name != "rs-tiny":
            from rsretrieval.pipelines.runtime.checkpoints import resolve_checkpoint

            return resolve_checkpoint(bcfg, self.cfg)
        from rsretrieval.data.registry import load_synthrs_dataset, synthrs_generated
        from rsretrieval.encoders.rs_tiny import rs_tiny_path

        o = bcfg.rs_tiny.train_data
        if not synthrs_generated(o, self.cfg.cache_dir):
            return "to run (rs-tiny trains first, ~10 min on 2 CPUs)"
        train = load_synthrs_dataset(o, self.cfg.cache_dir).split("train")
        path = rs_tiny_path(train, bcfg.rs_tiny, self.cfg.cache_dir, self.cfg.image_scenes)
        return path if path.is_file() else "to run (rs-tiny trains first, ~10 min on 2 CPUs)"


def gemini_tasks(cfg: BenchmarkConfig, ds: RSDataset, evaluated: bool = True) -> list[tuple[str, str]]:
    """(task, variant filter) of every Gemini task a run would send for ``ds`` (backend=gemini); a
    training split (``evaluated`` False) needs only its graphs."""
    tasks: list[tuple[str, str]] = []
    if evaluated and "fine_grained" in cfg.variants and "fine_grained" not in set(ds.captions["variant"].to_pylist()):
        tasks.append(("fine_grained_caption", ""))
    if any(m in cfg.modes for m in GRAPH_MODES):
        tasks.append(("text_graph", ""))
        if "generated" in cfg.graph_matching.image_graphs:
            tasks += [("object_counts", ""), ("image_graph", "")]
    if evaluated and any(m in cfg.modes for m in SCENE_TEXT_MODES) and cfg.text_scenes.generator == "gemini":
        tasks.append(("text_scenes", ""))
    tasks += [(t, "fine_grained") for t in cfg.generate] if evaluated else []
    return list(dict.fromkeys(tasks))


def gemini_estimate(cfg: BenchmarkConfig, cache: PlanCache) -> tuple[list[dict[str, Any]], list[str]]:
    """Dry-run rows (requests, tokens, cost per dataset split x task) as if ``generation.backend=gemini``,
    and notes on what the estimate leaves out."""
    from rsretrieval.data.errors import DatasetError
    from rsretrieval.data.registry import evaluation_split
    from rsretrieval.pipelines.stages.generation_tasks import dry_run, task_inputs

    gcfg = cfg.model_copy(update={"generation": cfg.generation.model_copy(update={"backend": "gemini"})})
    rows, notes = [], []
    for dcfg in cfg.datasets:
        ds = cache.dataset(dcfg)
        if ds is None:
            notes.append(f"{dcfg.name}: {cache.reasons[dcfg.name]}; no estimate")
            continue
        splits = [(dcfg.split, ds)]
        tcfg = cfg.graph_matching.train
        if tcfg.enabled and any(m in cfg.modes for m in GRAPH_MODES):  # training graphs of train / val
            full = cache.full[dcfg.name]
            for split, limit in ((tcfg.split, tcfg.limit_images), (tcfg.val_split, None)):
                try:
                    splits.append((split, evaluation_split(full, dcfg.model_copy(update={"split": split,
                                                                                         "limit_images": limit}))))
                except DatasetError:
                    notes.append(f"{dcfg.name}: no '{split}' split, so no graph training (and no requests for it)")
        for k, (split, sub) in enumerate(splits):
            for task, variant in gemini_tasks(cfg, sub, evaluated=k == 0):
                row = dry_run(gcfg, task, task_inputs(sub, task, variant, None))
                rows.append({"dataset": dcfg.name, "split": split, **row})
        if "fine_grained" in cfg.variants and "fine_grained" not in set(ds.captions["variant"].to_pylist()):
            notes.append(f"{dcfg.name}: text graphs of the generated fine-grained captions are not counted")
    return rows, notes


def cell_line(c: Cell) -> str:
    return (f"    {c.dataset:<10} {c.variant:<13} {c.backbone[:18]:<18} {c.mode:<6} {c.crops:<9} {c.graphs[:14]:<14} "
            f"{c.similarity:<9} {c.training:<9} {c.scoring}")


def format_plan(plan: Plan, cfg: BenchmarkConfig) -> str:
    """The plan as printed by ``--plan``: steps with their cache state, cells, and the Gemini estimate."""
    cache = PlanCache(cfg)
    cells, stages = plan.cells, list(plan.stages())
    lines = [f"plan: {len(cells)} cells, {len(stages)} stages; cache {cfg.cache_dir}; outputs {cfg.run_dir}", "",
             "stages (in order):"]
    for step in plan.steps:
        if step.kind == "score":
            lines.append(f"  {'score':<34} {len(step.cells):>3} cells: {step.what}")
        else:
            lines.append(f"  {step.name:<34} {cache.state(step):<28} {step.what}")
    lines += ["", "cells:", cell_line(Cell("dataset", "variant", "backbone", "mode", "crops", "graphs", "similarity",
                                            "training")).replace("full matrix", "scoring")]
    lines += [cell_line(c) for c in cells]
    rows, notes = gemini_estimate(cfg, cache)
    requests = sum(r["requested"] for r in rows)
    cost = sum(r["cost_usd"] for r in rows)
    minutes = sum(r["minutes_at_quota"] for r in rows)
    lines += ["", "Gemini (estimate; responses already in the store are not requested again):"]
    if cfg.generation.backend != "gemini":
        lines.append(f"  generation.backend={cfg.generation.backend}: this run sends no request (offline stand-ins: "
                     "heuristic text parser, sentence splitter, simulated VLM). With generation.backend=gemini it would send:")
    for r in rows:
        lines.append(f"  {r['dataset']} {r['split']:<6} {r['task']:<21} {r['requested']:>7} requests "
                     f"({r['skipped_done']} in the store), ~{r['tokens_in']:,} tokens in, ~{r['tokens_out']:,} out, "
                     f"~${r['cost_usd']:.2f}")
    lines.append(f"  total: {requests} requests, ~${cost:.2f} with {cfg.generation.model} "
                 f"({cfg.generation.mode} mode), ~{minutes:.0f} min at {cfg.generation.requests_per_minute} requests/min")
    lines += [f"  note: {n}" for n in notes]
    return "\n".join(lines)
