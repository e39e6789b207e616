"""The 'vanilla' / 'trained' graph models of the benchmark (thesis secs. 5.4, 6.4), trained with Ray Train.

Per dataset and image-graph source (simulated VLM / Gemini / oracle), on the train split's graphs
(validation split for early stopping):

* stage A, per node-embedding kind: ``vanilla`` = a G2G GMN on the frozen text embeddings;
  ``trained`` = the graph encoder (``graph_matching.encoder``) trained with the G2G GMN and the
  max-mean node loss; its encoder also feeds the 'trained' Hungarian cells;
* stage B, per backbone: a VG2VG GMN (global cosine input) on stage A's frozen nodes, trained with the
  backbone's train-split caption and image vectors, warm-started from stage A's GMN with the cosine
  input at weight 0 (it starts at the G2G ranking and learns how much global cosine to add).

Each stage is one Ray Train run named by the hash of everything that determines its weights (data,
configs, backbone checkpoint), so a killed benchmark resumes the run, and the result is cached under
``<cache_dir>/graph_models/<key>.pt``: a second benchmark with the same data and config trains nothing.
The combined checkpoint (encoder, G2G GMN, VG2VG heads) of every (dataset, source, embeddings) is written
to ``<run_dir>/graph_models/`` and MLflow; it is the file ``graph_matching.gmn_checkpoint`` accepts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from rsretrieval.config import BenchmarkConfig, GMNConfig, GraphEncoderConfig
from rsretrieval.data.registry import evaluation_split
from rsretrieval.data.schema import RSDataset
from rsretrieval.graphs.tensors import embed_graphs, from_node_vectors
from rsretrieval.pipelines.tracking import Tracker, metric_key
from rsretrieval.training.graph_loop import GraphPairs, TrainData
from rsretrieval.training.graph_model import GraphMatcher, save_matcher, training_gmn_config, warm_start_vg2vg

log = logging.getLogger(__name__)
VANILLA_ENCODER = GraphEncoderConfig(kind="vanilla")
KEY_VERSION = 1


def graph_pairs(graphs: Any, ds: RSDataset, source: str, variants: list[str], embedder: Any,
                vectors: tuple[np.ndarray, np.ndarray] | None = None) -> GraphPairs:
    """Caption graphs of ``variants`` and image graphs of ``source`` as embedded tensors.

    ``vectors``: (caption vectors of those captions in table order, image vectors), unit length.
    """
    caps = ds.captions.filter(pc.is_in(ds.captions["variant"], pa.array(variants)))
    image_ids = ds.images["image_id"].to_pylist()
    pos = {iid: i for i, iid in enumerate(image_ids)}
    q = embed_graphs([graphs.captions[c] for c in caps["caption_id"].to_pylist()], embedder)
    d = embed_graphs([graphs.images[source][i] for i in image_ids], embedder)
    owner = torch.tensor([pos[i] for i in caps["image_id"].to_pylist()], dtype=torch.int64)
    qv = dv = None
    if vectors is not None:
        qv, dv = (torch.as_tensor(np.asarray(v, np.float32)) for v in vectors)
    return GraphPairs(q, d, owner, qv, dv)


def _digest(*tensors: torch.Tensor | None) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(b"none" if t is None else t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def data_fingerprint(data: TrainData) -> str:
    parts = list((data.init_gmn or {}).values())
    for p in (data.train, data.val):
        for b in (p.queries, p.docs):
            parts += [b.nodes.vectors, b.nodes.offsets, b.edge_index, b.edge_attr]
        parts += [p.query_image, p.query_vectors, p.doc_vectors]
    return _digest(*parts)


@dataclass
class StageResult:
    model: GraphMatcher
    state: dict[str, Any]  # best_model, best_mr, best_epoch, history, epoch, stopped
    seconds: float
    cached: bool


def fit_cached(cfg: BenchmarkConfig, data: TrainData, encoder: GraphEncoderConfig, gmn: GMNConfig) -> StageResult:
    """Train one stage with Ray Train, or load it from the cache (keyed by data + configs)."""
    from rsretrieval.pipelines.train_graphs import fit_graph_matcher

    tcfg = cfg.graph_matching.train
    key_src = {"v": KEY_VERSION, "data": data_fingerprint(data), "encoder": encoder.model_dump(), "gmn": gmn.model_dump(),
               "train": tcfg.model_dump(mode="json", exclude={"workers", "cpus_per_worker", "use_gpu", "max_failures",
                                                               "storage_path", "enabled", "variants", "split",
                                                               "val_split", "limit_images"})}
    key = hashlib.sha256(json.dumps(key_src, sort_keys=True).encode()).hexdigest()[:20]
    path = Path(cfg.cache_dir) / "graph_models" / f"{key}.pt"
    node_dim, edge_dim = data.train.queries.node_dim, int(data.train.queries.edge_attr.shape[1])
    model = GraphMatcher(encoder, gmn, node_dim, edge_dim, seed=tcfg.seed)
    if path.is_file():
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["best_model"])
        return StageResult(model.eval(), state, 0.0, True)
    storage = tcfg.storage_path or Path(cfg.cache_dir) / "ray_train"
    fit = fit_graph_matcher(data, tcfg, encoder, gmn, f"graph-{key}", storage)
    keep = {k: fit.state[k] for k in ("best_model", "best_mr", "history", "epoch", "stopped")}
    keep["best_epoch"] = fit.state.get("best_epoch", 0)
    keep["seconds"] = fit.seconds
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(keep, tmp)
    tmp.replace(path)
    shutil.rmtree(fit.run_path, ignore_errors=True)  # its per-epoch checkpoints: the cache file supersedes them
    model.load_state_dict(keep["best_model"])
    return StageResult(model.eval(), keep, fit.seconds, False)


@dataclass
class GraphModels:
    """Trained matchers of one dataset: (source, embeddings) -> stage A; (source, embeddings, backbone) -> head."""

    dataset: str
    g2g: dict[tuple[str, str], GraphMatcher] = field(default_factory=dict)
    vg2vg: dict[tuple[str, str, str], GraphMatcher] = field(default_factory=dict)
    summary: list[dict[str, Any]] = field(default_factory=list)  # one row per stage (training table)
    notes: list[str] = field(default_factory=list)
    variants: list[str] = field(default_factory=list)  # caption variants trained on
    train_graphs: Any = None  # DatasetGraphs of the train split
    val_graphs: Any = None
    train_ds: RSDataset | None = None
    val_ds: RSDataset | None = None

    @property
    def generation(self) -> list[dict[str, Any]]:
        """Accounting rows of the train/val graphs (data preparation of training)."""
        return [r for g in (self.train_graphs, self.val_graphs) if g is not None for r in g.generation]

    def record(self, tracker: Tracker, source: str, embeddings: str, head: str, result: StageResult) -> None:
        s = result.state
        self.summary.append({"dataset": self.dataset, "graphs": source, "embeddings": embeddings, "head": head,
                             "epochs": s["epoch"], "best_epoch": s.get("best_epoch", 0), "early_stopped": s["stopped"],
                             "best_val_mr": s["best_mr"], "seconds": s.get("seconds", result.seconds),
                             "cached": result.cached})
        for h in s["history"]:  # learning curves, step = epoch
            tracker.log_metrics({metric_key("train", self.dataset, source, embeddings, head, k): float(v)
                                 for k, v in h.items() if k != "epoch"}, step=int(h["epoch"]))


def split_dataset(cfg: BenchmarkConfig, full: RSDataset, dcfg: Any, split: str, limit: int | None) -> RSDataset | None:
    """The split as its own dataset named ``<dataset>-<split>`` (its generated outputs go to their own folder)."""
    try:
        sub = evaluation_split(full, dcfg.model_copy(update={"split": split, "limit_images": limit}))
    except Exception as exc:  # noqa: BLE001 - a dataset without that split is trained on nothing
        log.info("%s: no %s split for graph training (%s)", dcfg.name, split, exc)
        return None
    if getattr(dcfg, "verify_images", "exists") == "decode":  # as the evaluated split: bad files leave, counted
        from rsretrieval.data.quarantine import quarantine_images

        checked = quarantine_images(sub, cache_dir=cfg.cache_dir)
        if checked.rows.num_rows:
            log.warning("%s", checked.note())
        sub = checked.dataset
    return dataclasses.replace(sub, name=f"{dcfg.name}-{split}")


def prepare_training_graphs(cfg: BenchmarkConfig, full: RSDataset, dcfg: Any) -> GraphModels:
    """Train / validation splits and their graphs (generated or loaded from the store), no model yet."""
    from rsretrieval.pipelines.graph_modes import prepare_graphs

    tcfg = cfg.graph_matching.train
    out = GraphModels(dcfg.name)
    out.train_ds = split_dataset(cfg, full, dcfg, tcfg.split, tcfg.limit_images)
    out.val_ds = split_dataset(cfg, full, dcfg, tcfg.val_split, None)
    if out.train_ds is None or out.val_ds is None:
        out.notes.append(f"{dcfg.name}: graph models not trained (no '{tcfg.split}' or '{tcfg.val_split}' split)")
        return out
    out.train_graphs, out.val_graphs = prepare_graphs(cfg, out.train_ds), prepare_graphs(cfg, out.val_ds)
    present = set(out.train_ds.captions["variant"].to_pylist())
    out.variants = [v for v in (tcfg.variants or cfg.variants) if v in present]
    return out


def train_g2g_models(cfg: BenchmarkConfig, full: RSDataset, dcfg: Any, sources: list[str] | None, embedder: Any,
                     tracker: Tracker) -> GraphModels:
    """Stage A for every image-graph source (None = all of the train split) and embeddings kind."""
    gm, tcfg = cfg.graph_matching, cfg.graph_matching.train
    out = prepare_training_graphs(cfg, full, dcfg)
    if out.train_graphs is None:
        return out
    variants = out.variants
    for source in sources if sources is not None else list(out.train_graphs.images):
        if source not in out.train_graphs.images or source not in out.val_graphs.images:
            out.notes.append(f"{dcfg.name}: no '{source}' image graphs of the train/val split; its GMN is not trained")
            continue
        data = TrainData(graph_pairs(out.train_graphs, out.train_ds, source, variants, embedder),
                         graph_pairs(out.val_graphs, out.val_ds, source, variants, embedder))
        for emb in gm.embeddings:
            encoder = VANILLA_ENCODER if emb == "vanilla" else gm.encoder
            result = fit_cached(cfg, data, encoder, training_gmn_config(gm.gmn, encoder, False))
            out.g2g[(source, emb)] = result.model
            out.record(tracker, source, emb, "g2g", result)
    out.notes.append(f"{dcfg.name}: GMN and graph encoder trained with Ray Train on {tcfg.split} "
                     f"({out.train_ds.images.num_rows} images, variants {', '.join(variants)}), early-stopped on "
                     f"{tcfg.val_split} mR; 'vanilla' GMN = trained on frozen node embeddings")
    return out


def _encoded(pairs: GraphPairs, encoder: GraphMatcher) -> GraphPairs:
    with torch.no_grad():
        q, d = encoder.encode(pairs.queries), encoder.encode(pairs.docs)
    return GraphPairs(from_node_vectors(pairs.queries, q.vectors.cpu()), from_node_vectors(pairs.docs, d.vectors.cpu()),
                      pairs.query_image, pairs.query_vectors, pairs.doc_vectors)


def train_vg2vg_heads(cfg: BenchmarkConfig, models: GraphModels, backbone: str, vectors: dict[str, Any],
                      embedder: Any, tracker: Tracker) -> None:
    """Stage B for one backbone; ``vectors``: split -> (caption id -> row, caption vectors, image vectors)."""
    for (source, emb), stage_a in list(models.g2g.items()):
        pairs = {}
        for split, ds, graphs in (("train", models.train_ds, models.train_graphs), ("val", models.val_ds, models.val_graphs)):
            caps = ds.captions.filter(pc.is_in(ds.captions["variant"], pa.array(models.variants)))
            index, cap_vec, img_vec = vectors[split]
            rows = [index[c] for c in caps["caption_id"].to_pylist()]
            pairs[split] = _encoded(graph_pairs(graphs, ds, source, models.variants, embedder,
                                                (cap_vec[rows], img_vec)), stage_a)
        # nodes frozen (stage A's encoder), the GMN warm-started from stage A's with the cosine input at 0
        data = TrainData(pairs["train"], pairs["val"], warm_start_vg2vg(stage_a.gmn.state_dict()))
        result = fit_cached(cfg, data, VANILLA_ENCODER, stage_a.gmn_cfg.model_copy(update={"use_global": True}))
        models.vg2vg[(source, emb, backbone)] = result.model
        models.record(tracker, source, emb, f"vg2vg-{backbone}", result)


def write_model_files(models: GraphModels, run_dir: Path, tracker: Tracker) -> list[Path]:
    """One combined checkpoint per (source, embeddings): encoder, G2G GMN, every backbone's VG2VG head."""
    paths = []
    for (source, emb), model in models.g2g.items():
        heads = {b: m.gmn for (s, e, b), m in models.vg2vg.items() if (s, e) == (source, emb)}
        meta = {"dataset": models.dataset, "graphs": source,
                "summary": [r for r in models.summary if (r["graphs"], r["embeddings"]) == (source, emb)]}
        path = save_matcher(run_dir / "graph_models" / f"{models.dataset}-{source}-{emb}.pt", emb, model,
                            json.loads(json.dumps(meta, default=str)), heads)
        tracker.log_artifact(path, "graph_models")
        paths.append(path)
    return paths

