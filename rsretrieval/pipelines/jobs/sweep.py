"""Ray Tune sweeps of the graph matcher: a YAML space, ASHA, one MLflow run per trial, resumable.

The training graphs (train / validation split of the first configured dataset, one image-graph
source) are built once on the driver and shared with every trial through the object store
(``tune.with_parameters``). Each trial applies its sampled values to the benchmark config and runs
the same loop as Ray Train (:func:`train_graph_matcher`), reporting every epoch to Tune with a
checkpoint, so ASHA can stop it early and an interrupted sweep resumes: ``Tuner.restore`` keeps
finished trials and continues unfinished ones from their last epoch.

Outputs in ``<output_dir>/sweeps/<name>/``: Ray Tune's experiment state, ``trials.csv`` (every
trial's values, best validation mR, epochs run) and ``best_config.yaml`` (the base config with the
best trial's values: ``python rayjobs/full_benchmark.py --config .../best_config.yaml``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from rsretrieval.config import BenchmarkConfig
from rsretrieval.training.graph_loop import TrainData
from rsretrieval.training.search_space import SearchSpace, apply_overrides

log = logging.getLogger(__name__)


@dataclass
class SweepResult:
    sweep_dir: Path
    best_config: Path
    trials_csv: Path
    best_values: dict[str, Any]
    best_metric: float
    n_trials: int
    seconds: float
    restored: bool
    location: str  # sweep_dir, or its URI when output_dir is object storage


def tune_domains(space: SearchSpace) -> dict[str, Any]:
    """Ray Tune domain objects of a search space, keyed by config path."""
    from ray import tune

    out = {}
    for key, d in space.space.items():
        t = d["type"]
        out[key] = (tune.grid_search(d["values"]) if t == "grid" else tune.choice(d["values"]) if t == "choice"
                    else tune.quniform(d["low"], d["high"], d["q"]) if t == "quniform"
                    else getattr(tune, t)(d["low"], d["high"]))
    return out


def tune_scheduler(space: SearchSpace, max_t: int) -> Any:
    """ASHA (``scheduler.type: asha``, the default) with the file's options, or None for ``fifo``."""
    kind = space.scheduler.get("type", "asha")
    if kind == "fifo":
        return None
    if kind != "asha":
        raise ValueError(f"{space.path}: scheduler type {kind!r} is not supported (asha or fifo)")
    from ray.tune.schedulers import ASHAScheduler

    opts = {k: v for k, v in space.scheduler.items() if k != "type"}
    return ASHAScheduler(time_attr="training_iteration", max_t=max_t, **opts)


def sweep_data(cfg: BenchmarkConfig, source: str | None = None, variant: str | None = None
               ) -> tuple[TrainData, str, list[str]]:
    """Training data of the first dataset and one caption variant (default: fine_grained when present, as the
    benchmark trains one model per variant): (data, image-graph source used, notes)."""
    from rsretrieval.data.registry import load_dataset
    from rsretrieval.graphs.embedder import CachedTextEmbedder, load_text_embedder
    from rsretrieval.pipelines.benchmark.graph_training import graph_pairs, prepare_training_graphs

    dcfg = cfg.datasets[0]
    models = prepare_training_graphs(cfg, load_dataset(dcfg, cfg.cache_dir), dcfg)
    if models.train_graphs is None:
        raise ValueError("; ".join(models.notes))
    available = [s for s in models.train_graphs.images if s in models.val_graphs.images]
    source = source or (available[0] if available else None)
    if source not in available:
        raise ValueError(f"{dcfg.name}: no image graphs '{source}' for train and validation (available: {available}); "
                         "choose one with --graphs")
    variant = variant or ("fine_grained" if "fine_grained" in models.variants else models.variants[0])
    if variant not in models.variants:
        raise ValueError(f"{dcfg.name}: no '{variant}' captions in train and validation (have: {models.variants})")
    embedder = CachedTextEmbedder(load_text_embedder(cfg.graph_matching.embedder), Path(cfg.cache_dir) / "node_embeddings")
    data = TrainData(graph_pairs(models.train_graphs, models.train_ds, source, [variant], embedder),
                     graph_pairs(models.val_graphs, models.val_ds, source, [variant], embedder))
    return data, source, models.notes


def _trial(values: dict[str, Any], data: TrainData, base: dict[str, Any], embeddings: str) -> None:
    """One Tune trial: the benchmark config with ``values`` applied, trained for G2G."""
    from ray import tune

    from rsretrieval.pipelines.benchmark.graph_training import VANILLA_ENCODER
    from rsretrieval.pipelines.stages.train_graphs import CheckpointReporter
    from rsretrieval.training.graph_loop import train_graph_matcher
    from rsretrieval.training.graph_model import training_gmn_config

    cfg = apply_overrides(base, values)
    gm = cfg.graph_matching
    torch.set_num_threads(max(1, int(gm.train.cpus_per_worker or 1)))
    encoder = gm.encoder if embeddings == "trained" else VANILLA_ENCODER
    train_graph_matcher(data, gm.train, encoder, training_gmn_config(gm.gmn, False), CheckpointReporter(tune))


def run_sweep(cfg: BenchmarkConfig, space: SearchSpace, name: str, source: str | None = None,
              embeddings: str = "trained", num_samples: int | None = None, max_concurrent: int | None = None) -> SweepResult:
    """Run (or resume) the sweep ``name`` under ``<output_dir>/sweeps``. URI output / cache folders work in
    local mirrors (:class:`RunStorage`): pulled before, pushed after, the cache also when the sweep fails."""
    from rsretrieval.pipelines.runtime.object_storage import RunStorage
    from rsretrieval.pipelines.runtime.tracking import tracking_env_restored
    from rsretrieval.storage import StorageError

    store = RunStorage(cfg)
    store.pull()
    try:
        with tracking_env_restored():  # Tune's MLflow callback exports the sweep's store
            result = _run_sweep(cfg, store.local_config(), space, name, source, embeddings, num_samples,
                                max_concurrent)
    except BaseException:
        try:
            store.push_cache()
        except StorageError:
            log.exception("uploading the cache after the failed sweep failed too")
        raise
    store.push_cache()
    store.push_outputs()  # mlflow.db
    return result


def _run_sweep(user_cfg: BenchmarkConfig, cfg: BenchmarkConfig, space: SearchSpace, name: str, source: str | None,
               embeddings: str, num_samples: int | None, max_concurrent: int | None) -> SweepResult:
    """:func:`run_sweep` on ``cfg``, whose cache_dir is local (``user_cfg``'s URIs go into best_config.yaml)."""
    from ray import tune
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    from rsretrieval.pipelines.runtime.ray_session import init_ray
    from rsretrieval.pipelines.runtime.tracking import tracking_uri
    from rsretrieval.pipelines.stages.train_graphs import storage_args
    from rsretrieval.storage import RemoteFolder, is_uri, join_uri

    t0 = time.perf_counter()
    base = user_cfg.model_dump(mode="json")
    init_ray(cfg.ray)
    data, source, _ = sweep_data(cfg, source)
    trainable = tune.with_parameters(_trial, data=data, base=base, embeddings=embeddings)
    trainable = tune.with_resources(trainable, {"cpu": cfg.graph_matching.train.cpus_per_worker or 1})
    # Tune's experiment state goes straight to <output_dir>/sweeps (a bucket too: every node must see it)
    remote = is_uri(cfg.output_dir)
    storage = storage_args(join_uri(str(cfg.output_dir), "sweeps") if remote
                           else (Path(cfg.output_dir) / "sweeps").resolve())
    experiment, filesystem = f"{storage['storage_path']}/{name}", storage.get("storage_filesystem")
    path = (cfg.local_output_dir / "sweeps" / name).resolve()  # trials.csv and best_config.yaml (uploaded when remote)
    restored = tune.Tuner.can_restore(experiment, storage_filesystem=filesystem)
    if restored:
        log.info("sweep %s: resuming from %s (finished trials are kept)", name, experiment)
        tuner = tune.Tuner.restore(experiment, trainable=trainable, resume_errored=True,
                                   storage_filesystem=filesystem)
    else:
        callbacks = [MLflowLoggerCallback(tracking_uri(cfg), experiment_name=f"{cfg.mlflow.experiment}-sweep",
                                          tags={"sweep": name, "graphs": source, "embeddings": embeddings})] \
            if cfg.mlflow.enabled else []
        tuner = tune.Tuner(
            trainable, param_space=tune_domains(space),
            tune_config=tune.TuneConfig(metric=space.metric, mode="max", num_samples=num_samples or space.num_samples,
                                        scheduler=tune_scheduler(space, cfg.graph_matching.train.epochs),
                                        max_concurrent_trials=max_concurrent),
            run_config=tune.RunConfig(name=name, callbacks=callbacks, **storage,
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=1)))
    grid = tuner.fit()
    if grid.num_errors:
        log.warning("sweep %s: %d trials failed: %s", name, grid.num_errors, [str(e)[:200] for e in grid.errors])
    best = grid.get_best_result(metric=space.metric, mode="max", scope="all")
    best_cfg = apply_overrides(base, best.config)
    path.mkdir(parents=True, exist_ok=True)
    best_path = path / "best_config.yaml"
    best_path.write_text(f"# best trial of sweep {name} ({space.metric} = {best.metrics[space.metric]:.2f}, graphs: "
                         f"{source}, embeddings: {embeddings}); values: {best.config}\n"
                         + yaml.safe_dump(best_cfg.model_dump(mode="json"), sort_keys=False))
    last = grid.get_dataframe()  # last result per trial: epochs run, time
    best_rows = grid.get_dataframe(filter_metric=space.metric, filter_mode="max")
    keep = ["trial_id", *(c for c in last.columns if c.startswith("config/")), "training_iteration", "time_total_s"]
    table = last[keep].rename(columns={"training_iteration": "epochs_run"}).merge(
        best_rows[["trial_id", space.metric, "training_iteration"]].rename(columns={"training_iteration": "best_epoch"}),
        on="trial_id")
    trials = path / "trials.csv"
    table.to_csv(trials, index=False)
    location = join_uri(str(cfg.output_dir), "sweeps", name) if remote else str(path)
    if remote:
        RemoteFolder(location).push(path)
    return SweepResult(path, best_path, trials, dict(best.config), float(best.metrics[space.metric]), len(grid),
                       time.perf_counter() - t0, restored, location)
