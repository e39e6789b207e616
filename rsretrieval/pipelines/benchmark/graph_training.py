"""The 'vanilla' / 'trained' graph models of the benchmark (thesis secs. 5.4, 6.4), trained with Ray Train.

Per dataset, image-graph source (simulated VLM / Gemini / oracle) and caption variant (one model per
variant, trained on that variant's train captions and early-stopped on its own validation captions):

* G2G, per node-embedding kind: ``vanilla`` = a G2G GMN on the frozen text embeddings; ``trained`` =
  the graph encoder (``graph_matching.encoder``) trained with the G2G GMN and the max-mean node loss;
  its encoder also feeds the 'trained' G2G Hungarian cells. Both use the same GMN config: the columns
  differ only in the encoder;
* VG2VG, per backbone and kind: the encoder and a VG2VG GMN (global cosine input, eq. 5) trained end to
  end (Fig. 15) on the backbone's train-split caption and image vectors, warm-started from the G2G
  matcher (its encoder, and its GMN with the cosine input at weight 0: training begins at the G2G
  ranking and learns how much global cosine to add). Its encoder feeds the 'trained' VG2VG cells.

Each stage is one Ray Train run named by the hash of everything that determines its weights (data,
configs, backbone checkpoint), so a killed benchmark resumes the run, and the result is cached under
``<cache_dir>/graph_models/<key>.pt``: a second benchmark with the same data and config trains nothing.
The combined checkpoint (encoder, G2G GMN, VG2VG matchers) of every (dataset, source, embeddings,
variant) is written to ``<run_dir>/graph_models/`` and MLflow; it is the file
``graph_matching.gmn_checkpoint`` accepts.
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
from rsretrieval.graphs.tensors import embed_graphs
from rsretrieval.pipelines.runtime.tracking import Tracker, metric_key
from rsretrieval.training.graph_loop import GraphPairs, TrainData
from rsretrieval.training.graph_model import GraphMatcher, save_matcher, training_gmn_config, vg2vg_init
from rsretrieval.training.graph_stages import Stage
from rsretrieval.storage import delete_folder, is_uri, join_uri

log = logging.getLogger(__name__)
VANILLA_ENCODER = GraphEncoderConfig(kind="vanilla")
KEY_VERSION = 2  # 2: per-variant models, end-to-end VG2VG, reverse edges


def graph_pairs(graphs: Any, ds: RSDataset, source: str, variants: list[str], embedder: Any,
                vectors: tuple[np.ndarray, np.ndarray] | None = None) -> GraphPairs:
    """Caption graphs of ``variants`` and image graphs of ``source`` as embedded tensors.

    ``vectors``: (caption vectors of those captions in table order, image vectors), unit length.
    """
    caps = ds.captions.filter(pc.is_in(ds.captions["variant"], pa.array(variants)))
    image_ids = ds.images["image_id"].to_pylist()
    pos = {iid: i for i, iid in enumerate(image_ids)}
    q = embed_graphs(graphs.captions.select(caps["caption_id"].to_pylist()).elements(), embedder)
    d = embed_graphs(graphs.images[source].elements(), embedder)  # in the split's image order
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
    parts = list((data.init_state or {}).values())
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


def stage_key(cfg: BenchmarkConfig, data: TrainData, encoder: GraphEncoderConfig, gmn: GMNConfig) -> str:
    """Hash of everything that determines a matcher's trained weights (its cache file name)."""
    tcfg = cfg.graph_matching.train
    key_src = {"v": KEY_VERSION, "data": data_fingerprint(data), "encoder": encoder.model_dump(), "gmn": gmn.model_dump(),
               "train": tcfg.model_dump(mode="json", exclude={"workers", "cpus_per_worker", "use_gpu", "max_failures",
                                                               "storage_path", "enabled", "variants", "split",
                                                               "val_split", "limit_images"})}
    return hashlib.sha256(json.dumps(key_src, sort_keys=True).encode()).hexdigest()[:20]


def fit_cached(cfg: BenchmarkConfig, stages: list[Stage]) -> list[StageResult]:
    """Load every stage from the cache (``<cache_dir>/graph_models/<key>.pt``) or train the missing ones,
    all in one Ray Train run; results in the order of ``stages``. Stage keys: :func:`stage_key`."""
    from rsretrieval.pipelines.stages.train_graphs import fit_graph_matchers

    tcfg = cfg.graph_matching.train
    folder = Path(cfg.cache_dir) / "graph_models"
    states: dict[str, dict[str, Any]] = {}
    for st in stages:
        if (folder / f"{st.key}.pt").is_file():
            states[st.key] = torch.load(folder / f"{st.key}.pt", map_location="cpu", weights_only=True)
            log.info("graph training %s: cached (best val mR %.2f)", st.label or st.key, states[st.key]["best_mr"])
    todo = list({st.key: st for st in stages if st.key not in states}.values())  # one run per distinct key
    if todo:
        run_name = "graphs-" + hashlib.sha256(" ".join(st.key for st in todo).encode()).hexdigest()[:20]
        log.info("graph training: %d matchers in one Ray Train run (%s)", len(todo), run_name)
        storage = tcfg.storage_path or Path(cfg.cache_dir) / "ray_train"
        done, _, run_path = fit_graph_matchers(todo, tcfg, run_name, storage)
        folder.mkdir(parents=True, exist_ok=True)
        for st in todo:
            tmp = folder / f".{st.key}.pt.tmp"
            torch.save(done[st.key], tmp)
            tmp.replace(folder / f"{st.key}.pt")
            states[st.key] = done[st.key]
        if is_uri(storage):  # s3:// / gs:// storage_path: Ray Train's run folder is in the bucket
            delete_folder(join_uri(str(storage), run_name))
        else:
            shutil.rmtree(run_path, ignore_errors=True)  # its per-epoch checkpoints: the cache files supersede them
    out, trained = [], {st.key for st in todo}
    for st in stages:
        state = states[st.key]
        node_dim, edge_dim = st.data.train.queries.node_dim, int(st.data.train.queries.edge_attr.shape[1])
        model = GraphMatcher(st.encoder, st.gmn, node_dim, edge_dim, seed=tcfg.seed)
        model.load_state_dict(state["best_model"])
        cached = st.key not in trained
        out.append(StageResult(model.eval(), state, 0.0 if cached else float(state.get("seconds", 0.0)), cached))
    return out


@dataclass
class GraphModels:
    """Trained matchers of one dataset: (source, embeddings, variant) -> G2G; (source, embeddings, variant,
    backbone) -> VG2VG."""

    dataset: str
    g2g: dict[tuple[str, str, str], GraphMatcher] = field(default_factory=dict)
    vg2vg: dict[tuple[str, str, str, str], GraphMatcher] = field(default_factory=dict)
    summary: list[dict[str, Any]] = field(default_factory=list)  # one row per stage (training table)
    notes: list[str] = field(default_factory=list)
    variants: list[str] = field(default_factory=list)  # caption variants with a model each
    train_graphs: Any = None  # DatasetGraphs of the train split
    val_graphs: Any = None
    train_ds: RSDataset | None = None
    val_ds: RSDataset | None = None

    @property
    def generation(self) -> list[dict[str, Any]]:
        """Accounting rows of the train/val graphs (data preparation of training)."""
        return [r for g in (self.train_graphs, self.val_graphs) if g is not None for r in g.generation]

    def record(self, tracker: Tracker, source: str, embeddings: str, variant: str, head: str,
               result: StageResult) -> None:
        s = result.state
        self.summary.append({"dataset": self.dataset, "graphs": source, "embeddings": embeddings, "variant": variant,
                             "head": head, "epochs": s["epoch"], "best_epoch": s.get("best_epoch", 0),
                             "early_stopped": s["stopped"], "best_val_mr": s["best_mr"], "lr": s.get("lr"),
                             "seconds": s.get("seconds", result.seconds), "cached": result.cached})
        for h in s["history"]:  # learning curves, step = epoch
            tracker.log_metrics({metric_key("train", self.dataset, source, embeddings, variant, head, k): float(v)
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
    from rsretrieval.pipelines.benchmark.graph_modes import prepare_graphs

    tcfg = cfg.graph_matching.train
    out = GraphModels(dcfg.name)
    out.train_ds = split_dataset(cfg, full, dcfg, tcfg.split, tcfg.limit_images)
    out.val_ds = split_dataset(cfg, full, dcfg, tcfg.val_split, None)
    if out.train_ds is None or out.val_ds is None:
        out.notes.append(f"{dcfg.name}: graph models not trained (no '{tcfg.split}' or '{tcfg.val_split}' split)")
        return out
    out.train_graphs, out.val_graphs = prepare_graphs(cfg, out.train_ds), prepare_graphs(cfg, out.val_ds)
    present = set(out.train_ds.captions["variant"].to_pylist()) & set(out.val_ds.captions["variant"].to_pylist())
    out.variants = [v for v in (tcfg.variants or cfg.variants) if v in present]
    return out


def train_g2g_models(cfg: BenchmarkConfig, full: RSDataset, dcfg: Any, sources: list[str] | None, embedder: Any,
                     tracker: Tracker) -> GraphModels:
    """G2G matchers for every image-graph source (None = all of the train split), variant and embeddings kind."""
    gm, tcfg = cfg.graph_matching, cfg.graph_matching.train
    out = prepare_training_graphs(cfg, full, dcfg)
    if out.train_graphs is None:
        return out
    slots: list[tuple[str, str, str]] = []
    stages: list[Stage] = []
    for source in sources if sources is not None else list(out.train_graphs.images):
        if source not in out.train_graphs.images or source not in out.val_graphs.images:
            out.notes.append(f"{dcfg.name}: no '{source}' image graphs of the train/val split; its GMN is not trained")
            continue
        for variant in out.variants:
            data = TrainData(graph_pairs(out.train_graphs, out.train_ds, source, [variant], embedder),
                             graph_pairs(out.val_graphs, out.val_ds, source, [variant], embedder))
            for emb in gm.embeddings:
                encoder = VANILLA_ENCODER if emb == "vanilla" else gm.encoder
                gmn = training_gmn_config(gm.gmn, False)
                slots.append((source, emb, variant))
                stages.append(Stage(stage_key(cfg, data, encoder, gmn), data, encoder, gmn,
                                    f"G2G {emb} ({source} graphs, {variant} captions)"))
    for (source, emb, variant), result in zip(slots, fit_cached(cfg, stages)):
        out.g2g[(source, emb, variant)] = result.model
        out.record(tracker, source, emb, variant, "g2g", result)
    out.notes.append(f"{dcfg.name}: GMN and graph encoder trained with Ray Train on {tcfg.split} "
                     f"({out.train_ds.images.num_rows} images), one model per caption variant "
                     f"({', '.join(out.variants)}), each early-stopped on its own {tcfg.val_split} mR; "
                     "'vanilla' = the same GMN on frozen node embeddings")
    return out


def train_vg2vg_heads(cfg: BenchmarkConfig, models: GraphModels, backbone: str, vectors: dict[str, Any],
                      embedder: Any, tracker: Tracker) -> None:
    """End-to-end VG2VG matchers of one backbone (encoder + VG2VG GMN, warm-started from the G2G matcher);
    ``vectors``: split -> (caption id -> row, caption vectors, image vectors)."""
    slots, stages = [], []
    for (source, emb, variant), g2g in list(models.g2g.items()):
        pairs = {}
        for split, ds, graphs in (("train", models.train_ds, models.train_graphs), ("val", models.val_ds, models.val_graphs)):
            caps = ds.captions.filter(pc.equal(ds.captions["variant"], variant))
            index, cap_vec, img_vec = vectors[split]
            rows = [index[c] for c in caps["caption_id"].to_pylist()]
            pairs[split] = graph_pairs(graphs, ds, source, [variant], embedder, (cap_vec[rows], img_vec))
        data = TrainData(pairs["train"], pairs["val"], vg2vg_init(g2g))
        gmn = g2g.gmn_cfg.model_copy(update={"use_global": True})
        slots.append((source, emb, variant))
        stages.append(Stage(stage_key(cfg, data, g2g.encoder_cfg, gmn), data, g2g.encoder_cfg, gmn,
                            f"VG2VG {backbone} {emb} ({source} graphs, {variant} captions)"))
    for (source, emb, variant), result in zip(slots, fit_cached(cfg, stages)):
        models.vg2vg[(source, emb, variant, backbone)] = result.model
        models.record(tracker, source, emb, variant, f"vg2vg-{backbone}", result)


def write_model_files(models: GraphModels, run_dir: Path, tracker: Tracker) -> list[Path]:
    """One combined checkpoint per (source, embeddings, variant): encoder, G2G GMN, every backbone's VG2VG matcher."""
    paths = []
    for (source, emb, variant), model in models.g2g.items():
        heads = {b: m for (s, e, v, b), m in models.vg2vg.items() if (s, e, v) == (source, emb, variant)}
        meta = {"dataset": models.dataset, "graphs": source, "variant": variant,
                "summary": [r for r in models.summary if (r["graphs"], r["embeddings"], r["variant"]) == (source, emb, variant)]}
        path = save_matcher(run_dir / "graph_models" / f"{models.dataset}-{source}-{emb}-{variant}.pt", emb, model,
                            json.loads(json.dumps(meta, default=str)), heads, variant)
        tracker.log_artifact(path, "graph_models")
        paths.append(path)
    return paths
