"""Ray Train glue for the graph matcher: one TorchTrainer around :func:`train_stages` (several matchers
trained in order by the same workers, :mod:`rsretrieval.training.graph_stages`).

* data-parallel workers (gloo on CPU, nccl on GPUs) via ``ray.train.torch.prepare_model``;
* the training data goes through the object store once (``ray.put``), not inside every config copy;
* a checkpoint every epoch (rank 0); ``FailureConfig(max_failures)`` restarts failed workers from the
  last one; a job restarted with the same run name and storage path resumes from it too (Ray Train
  keeps the run's checkpoint state under ``<storage_path>/<name>``), and a finished run is not repeated;
* :func:`fit_graph_matchers` returns every stage's result (best-epoch weights, per-epoch history) and,
  while it runs, logs one line per finished stage (the workers send them through a Ray queue);
* ``workers=0`` runs the loop in this process with a checkpoint file (no worker start-up: small runs).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rsretrieval.config import GMNConfig, GraphEncoderConfig, GraphTrainingConfig
from rsretrieval.pipelines.runtime.ray_session import ensure_ray
from rsretrieval.training.graph_loop import TrainData
from rsretrieval.training.graph_stages import Stage, train_stages
from rsretrieval.storage import is_uri, open_filesystem

log = logging.getLogger(__name__)
STATE_FILE = "state.pt"
FAULT_ENV = "RSR_TRAIN_FAIL_AT_EPOCH"  # fault tests: kill the rank-0 worker process once at this epoch


def load_state_dir(directory: str | Path) -> dict[str, Any]:
    return torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=True)


class CheckpointReporter:
    """Reporter over ``ray.train`` or ``ray.tune`` (same report / get_checkpoint calls)."""

    def __init__(self, api: Any, rank: int = 0, world: int = 1) -> None:
        self.api, self.rank, self.world = api, rank, world

    def restore(self) -> dict[str, Any] | None:
        ckpt = self.api.get_checkpoint()
        if ckpt is None:
            return None
        with ckpt.as_directory() as d:
            return load_state_dir(d)

    def report(self, metrics: dict[str, float], state: dict[str, Any] | None) -> None:
        if state is None:
            self.api.report(metrics)
            return
        from ray.train import Checkpoint

        with tempfile.TemporaryDirectory() as d:
            torch.save(state, Path(d) / STATE_FILE)
            self.api.report(metrics, checkpoint=Checkpoint.from_directory(d))


class DiskReporter:
    """Workers = 0: the loop runs in this process; the checkpoint is one file, so a restart resumes too."""

    def __init__(self, run_dir: Path) -> None:
        self.rank, self.world, self.run_dir = 0, 1, run_dir
        self.history: list[dict[str, float]] = []

    def restore(self) -> dict[str, Any] | None:
        return load_state_dir(self.run_dir) if (self.run_dir / STATE_FILE).is_file() else None

    def report(self, metrics: dict[str, float], state: dict[str, Any] | None) -> None:
        self.history.append(metrics)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.run_dir / f".{STATE_FILE}.tmp"
        torch.save(state, tmp)
        tmp.replace(self.run_dir / STATE_FILE)


def _fault_hook(fault: dict[str, Any] | None, rank: int):
    """Kill the rank-0 worker process once (marker file) when epoch ``fault['epoch']`` of stage ``fault['stage']``
    starts: fault tests."""
    if not fault or rank != 0:
        return None
    marker = Path(fault["marker"])

    def hook(stage: int, epoch: int) -> None:
        if stage == int(fault.get("stage", 0)) and epoch == int(fault["epoch"]) and not marker.exists():
            marker.write_text("killed once")
            os._exit(1)

    return hook


def _train_fn(config: dict[str, Any]) -> None:
    """Runs in every Ray Train worker."""
    import ray
    import ray.train
    import ray.train.torch

    ctx = ray.train.get_context()
    torch.set_num_threads(max(1, int(config["threads"])))
    data: dict[Any, TrainData] = {}  # one deserialised copy per object (stages share data)
    for s in config["stages"]:
        if s["data"] not in data:
            data[s["data"]] = ray.get(s["data"])
    stages = [Stage(s["key"], data[s["data"]], GraphEncoderConfig(**s["encoder"]), GMNConfig(**s["gmn"]), s["label"])
              for s in config["stages"]]
    reporter = CheckpointReporter(ray.train, ctx.get_world_rank(), ctx.get_world_size())
    queue = config.get("progress") if reporter.rank == 0 else None

    def on_stage(index: int, stage: Stage, result: dict[str, Any]) -> None:
        if queue is not None:
            queue.put(_progress_line(index, len(stages), stage, result))

    train_stages(stages, GraphTrainingConfig(**config["train"]), reporter, ray.train.torch.get_device(),
                 wrap=ray.train.torch.prepare_model, on_epoch=_fault_hook(config.get("fault"), reporter.rank),
                 on_stage=on_stage)


def _progress_line(index: int, total: int, stage: Stage, result: dict[str, Any]) -> str:
    stopped = "early-stopped" if result["stopped"] else "max epochs"
    return (f"graph training {index + 1}/{total} {stage.label or stage.key}: best val mR {result['best_mr']:.2f} "
            f"at epoch {result['best_epoch']} of {result['epoch']} ({stopped}, {result['seconds']:.0f} s)")


@dataclass
class FitResult:
    state: dict[str, Any]  # final state: best_model, best_mr, best_epoch, history, epoch, stopped, lr, seconds
    seconds: float
    run_path: Path


class _ProgressPrinter:
    """Logs the lines the rank-0 worker puts into a Ray queue, while the driver waits in ``fit()``."""

    def __init__(self) -> None:
        import threading

        from ray.util.queue import Queue

        self.queue = Queue(actor_options={"num_cpus": 0})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="graph-training-progress")
        self._thread.start()

    def _drain(self, timeout: float | None) -> None:
        from ray.util.queue import Empty

        try:
            while True:
                log.info("%s", self.queue.get(timeout=timeout) if timeout else self.queue.get_nowait())
        except Empty:
            pass

    def _run(self) -> None:
        while not self._stop.is_set():
            self._drain(timeout=1.0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._drain(timeout=None)
        self.queue.shutdown()


def _use_gpu(cfg: GraphTrainingConfig) -> bool:
    if cfg.use_gpu is not None:
        return cfg.use_gpu
    import ray

    return ray.is_initialized() and ray.cluster_resources().get("GPU", 0) > 0


def fit_graph_matcher(data: TrainData, cfg: GraphTrainingConfig, encoder: GraphEncoderConfig, gmn: GMNConfig,
                      run_name: str, storage_path: str | Path, fail_at_epoch: int | None = None) -> FitResult:
    """One matcher: :func:`fit_graph_matchers` with one stage."""
    stage = Stage(run_name, data, encoder, gmn)
    results, seconds, run_path = fit_graph_matchers([stage], cfg, run_name, storage_path, fail_at_epoch)
    return FitResult(results[run_name], seconds, run_path)


def storage_args(storage: str | Path) -> dict[str, Any]:
    """RunConfig's storage: a local folder, or a URI opened here with pyarrow (the driver's environment:
    ``AWS_ENDPOINT_URL`` and the ``AWS_*`` keys travel inside the pickled filesystem to Ray's processes,
    which may have been started without them; without keys in the environment they use their own chain)."""
    if not is_uri(storage):
        return {"storage_path": str(storage)}
    filesystem, path = open_filesystem(str(storage), ship_credentials=True)
    return {"storage_path": path, "storage_filesystem": filesystem}


def fit_graph_matchers(stages: list[Stage], cfg: GraphTrainingConfig, run_name: str, storage_path: str | Path,
                       fail_at_epoch: int | None = None, fail_at_stage: int = 0
                       ) -> tuple[dict[str, dict[str, Any]], float, Path]:
    """Train ``stages`` in one TorchTrainer run (resuming ``run_name`` under ``storage_path`` if it exists):
    (key -> result, seconds, the run's folder).

    ``fail_at_epoch`` (or ``$RSR_TRAIN_FAIL_AT_EPOCH``): kill a worker process once at that epoch of stage
    ``fail_at_stage`` (fault tests).
    """
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    remote = "://" in str(storage_path)  # s3:// or gs:// storage for multi-node clusters
    storage = str(storage_path) if remote else Path(storage_path).resolve()
    if not remote:
        storage.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if cfg.workers == 0:
        if remote:
            raise ValueError("graph_matching.train.workers=0 (in-process) needs a local storage_path")
        reporter = DiskReporter(storage / run_name)
        done = train_stages(stages, cfg, reporter,
                            on_stage=lambda i, st, r: log.info("%s", _progress_line(i, len(stages), st, r)))
        return done, time.perf_counter() - t0, reporter.run_dir
    ensure_ray()
    cpus = cfg.cpus_per_worker or max(1.0, float(int(ray.cluster_resources().get("CPU", 1) // cfg.workers)))
    progress = _ProgressPrinter()
    refs: dict[int, Any] = {}  # vanilla and trained matchers share their data: one copy in the object store
    for s in stages:
        if id(s.data) not in refs:
            refs[id(s.data)] = ray.put(s.data)
    config = {"stages": [{"key": s.key, "data": refs[id(s.data)], "encoder": s.encoder.model_dump(),
                          "gmn": s.gmn.model_dump(), "label": s.label} for s in stages],
              "train": cfg.model_dump(mode="json"), "threads": cpus, "progress": progress.queue}
    fail_at = fail_at_epoch if fail_at_epoch is not None else os.environ.get(FAULT_ENV)
    if fail_at is not None:
        config["fault"] = {"epoch": int(fail_at), "stage": fail_at_stage, "marker": str(Path(str(storage)) / f"{run_name}.fault-injected")}
    use_gpu = _use_gpu(cfg)
    trainer = TorchTrainer(
        _train_fn, train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=cfg.workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": cpus, **({"GPU": 1} if use_gpu else {})}),
        run_config=RunConfig(name=run_name, **storage_args(storage),
                             checkpoint_config=CheckpointConfig(num_to_keep=2),
                             failure_config=FailureConfig(max_failures=cfg.max_failures)))
    try:
        result = trainer.fit()
    finally:
        progress.close()
    seconds = time.perf_counter() - t0
    if result.error is not None or result.checkpoint is None:
        raise RuntimeError(f"Ray Train run {run_name} under {storage} failed: {result.error or 'no checkpoint'}")
    with result.checkpoint.as_directory() as d:
        group = load_state_dir(d)
    missing = [s.key for s in stages if s.key not in group["done"]]
    if missing:
        raise RuntimeError(f"Ray Train run {run_name} under {storage} ended without stages {missing}")
    return group["done"], seconds, Path(str(storage)) / run_name
