"""Several graph matchers trained one after another in one run (one Ray Train run, one process).

The benchmark trains up to 8 matchers per phase (image-graph source x caption variant x embeddings
kind). Each in its own Ray Train run would pay the start-up of a controller and a worker (~14 s on
2 CPU cores) eight times; in one run the worker starts once and trains the stages in order.

The run's checkpoint holds the whole group: the finished stages' results and the loop state of the
stage in progress, so a restarted worker (or a rerun of the same run) skips the finished stages and
resumes the current one at its last epoch, exactly as a single-stage run does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from rsretrieval.config import GMNConfig, GraphEncoderConfig, GraphTrainingConfig
from rsretrieval.training.graph_loop import Reporter, TrainData, train_graph_matcher

RESULT_KEYS = ("best_model", "best_mr", "best_epoch", "history", "epoch", "stopped", "lr")


@dataclass
class Stage:
    """One matcher to train: its cache key (unique in a group), data and configs; ``label`` names it to people."""

    key: str
    data: TrainData
    encoder: GraphEncoderConfig
    gmn: GMNConfig
    label: str = ""


class StageReporter:
    """The reporter one stage's loop sees: its checkpoints go into the group's state."""

    def __init__(self, outer: Reporter, group: dict[str, Any], key: str, index: int, total: int) -> None:
        self.outer, self.group, self.key, self.index, self.total = outer, group, key, index, total
        self.rank, self.world = outer.rank, outer.world

    def restore(self) -> dict[str, Any] | None:
        return self.group["current"] if self.group.get("current_key") == self.key else None

    def report(self, metrics: dict[str, float], state: dict[str, Any] | None) -> None:
        if state is not None:
            self.group.update(current=state, current_key=self.key)
        self.outer.report({**metrics, "stage": self.index + 1, "stages": self.total},
                          self.group if state is not None else None)


def stage_result(state: dict[str, Any], seconds: float) -> dict[str, Any]:
    """What is kept of a finished stage (its best weights and curve, not its optimiser)."""
    out = {k: state.get(k) for k in RESULT_KEYS}
    out["best_epoch"] = out["best_epoch"] or 0
    out["seconds"] = seconds
    return out


def train_stages(stages: list[Stage], cfg: GraphTrainingConfig, reporter: Reporter,
                 device: str | torch.device = "cpu", wrap: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
                 on_epoch: Callable[[int, int], None] | None = None,
                 on_stage: Callable[[int, Stage, dict[str, Any]], None] | None = None) -> dict[str, dict[str, Any]]:
    """Train ``stages`` in order; returns key -> :func:`stage_result`. ``on_epoch(stage index, epoch)`` is called
    before every epoch (fault tests), ``on_stage(index, stage, result)`` when a stage finishes (progress lines)."""
    keys = [s.key for s in stages]
    if len(set(keys)) != len(keys):
        raise ValueError(f"stage keys must be unique in a group: {keys}")
    group = reporter.restore() or {"done": {}, "current": None, "current_key": None}
    for i, stage in enumerate(stages):
        if stage.key in group["done"]:
            continue
        t0 = time.perf_counter()
        state = train_graph_matcher(stage.data, cfg, stage.encoder, stage.gmn,
                                    StageReporter(reporter, group, stage.key, i, len(stages)), device, wrap,
                                    (lambda epoch, i=i: on_epoch(i, epoch)) if on_epoch else None)
        group["done"][stage.key] = stage_result(state, time.perf_counter() - t0)
        group.update(current=None, current_key=None)
        if on_stage:
            on_stage(i, stage, group["done"][stage.key])
    if not group.get("finished"):  # a rerun of a finished run adds no checkpoint
        group["finished"] = True
        reporter.report({"stage": float(len(stages)), "stages": float(len(stages)), "finished": 1.0},
                        group if reporter.rank == 0 else None)
    return group["done"]
