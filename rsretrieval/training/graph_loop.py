"""The training loop of the graph matcher (thesis sec. 5.4), independent of who runs it.

:func:`train_graph_matcher` runs the same code inside a Ray Train worker (data-parallel with DDP),
a Ray Tune trial or a plain process; a :class:`Reporter` hides the difference (where the last
checkpoint comes from, where metrics and checkpoints go). Per epoch:

* the :class:`CaptionPerImageSampler` draws one caption per image and cuts contrastive batches with
  no two captions of one image (5.4.2); with W workers, worker r takes batches r, r + W, ... and every
  worker takes the same number of steps (DDP needs that);
* loss: InfoNCE (eq. 6, default; caption -> image as written, ``symmetric`` adds image -> caption) or
  triplet (eq. 7) over the B x B GMN scores, plus, when the encoder is trained, the same loss over the
  max-mean node scores (the encoder used with Hungarian matching);
* ``lr: auto``: the LR range test (sec. 5.4.3) on the training batches picks the peak rate first;
* gradient accumulation to the effective batch of eq. 8 and a per-update cosine schedule with warm-up;
* validation mR (T2I, mean of R@1/5/10) of the GMN and of max-mean on the validation split; the best
  epoch's weights are kept, and training stops after ``patience`` epochs without improvement;
* one checkpoint per epoch holding everything needed to resume (weights, optimiser, schedule, sampler
  epoch, best weights, history): a restarted worker or job continues from the last one.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np
import torch

from rsretrieval.config import GMNConfig, GraphEncoderConfig, GraphTrainingConfig
from rsretrieval.graphs.tensors import GraphBatch
from rsretrieval.training.graph_model import GraphMatcher, select_graphs
from rsretrieval.training.losses import info_nce, triplet
from rsretrieval.training.sampling import CaptionPerImageSampler
from rsretrieval.training.schedule import accumulation_steps, cosine_scheduler

MIN_DELTA = 1e-4  # validation mR (in %) must rise by more than this to count as better (float noise is not)


@dataclass
class GraphPairs:
    """Caption graphs, image graphs, each caption's image, and (VG2VG) unit global vectors of both."""

    queries: GraphBatch
    docs: GraphBatch
    query_image: torch.Tensor  # (n_queries,) int64 index into docs
    query_vectors: torch.Tensor | None = None  # (n_queries, D_global)
    doc_vectors: torch.Tensor | None = None  # (n_docs, D_global)

    def __post_init__(self) -> None:
        self.query_image = torch.as_tensor(self.query_image, dtype=torch.int64)
        if len(self.query_image) != len(self.queries):
            raise ValueError(f"{len(self.query_image)} image indices for {len(self.queries)} query graphs")
        if len(self.query_image) and (int(self.query_image.min()) < 0 or int(self.query_image.max()) >= len(self.docs)):
            raise ValueError("query_image refers to documents outside docs")
        if (self.query_vectors is None) != (self.doc_vectors is None):
            raise ValueError("give both query_vectors and doc_vectors (VG2VG) or neither (G2G)")

    def global_cosine(self, q_idx: torch.Tensor | slice, d_idx: torch.Tensor | slice) -> torch.Tensor | None:
        if self.query_vectors is None:
            return None
        return self.query_vectors[q_idx] @ self.doc_vectors[d_idx].T

    def head(self, n: int) -> "GraphPairs":
        """The first ``n`` queries (all documents kept)."""
        idx = torch.arange(min(n, len(self.queries)))
        qv = None if self.query_vectors is None else self.query_vectors[idx]
        return GraphPairs(select_graphs(self.queries, idx), self.docs, self.query_image[idx], qv, self.doc_vectors)


@dataclass
class TrainData:
    train: GraphPairs
    val: GraphPairs
    init_state: dict[str, torch.Tensor] | None = None  # matcher weights to start from (e.g. a VG2VG warm start)


class Reporter(Protocol):
    """Where a loop's checkpoints come from and go to."""

    rank: int
    world: int

    def restore(self) -> dict[str, Any] | None:
        """The state of the last checkpoint, or None on a fresh start."""

    def report(self, metrics: dict[str, float], state: dict[str, Any] | None) -> None:
        """Record one epoch's metrics and (rank 0) its checkpoint state."""


class MemoryReporter:
    """Keeps everything in memory: plain runs and tests."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        self.rank, self.world = 0, 1
        self.history: list[dict[str, float]] = []
        self.state = state

    def restore(self) -> dict[str, Any] | None:
        return self.state

    def report(self, metrics: dict[str, float], state: dict[str, Any] | None) -> None:
        self.history.append(metrics)
        if state is not None:
            self.state = copy.deepcopy(state)


def mean_recall_of(scores: torch.Tensor, gold: torch.Tensor) -> float:
    """Thesis mR (mean T2I R@1/5/10, %) of a full (Q, D) score matrix; ties rank the gold last."""
    g = scores.gather(1, gold[:, None])
    ranks = (scores >= g).sum(1)  # 1 = best; counting ties against the gold (pessimistic)
    return float(np.mean([100.0 * (ranks <= k).float().mean().item() for k in (1, 5, 10)]))


@torch.no_grad()
def validate(model: GraphMatcher, pairs: GraphPairs, chunk_size: int = 64) -> dict[str, float]:
    """Validation mR of the GMN and of the max-mean node score (the Hungarian stand-in)."""
    from rsretrieval.matching.late_interaction import LateInteractionScorer

    model.eval()
    q, d = model.encode(pairs.queries), model.encode(pairs.docs)
    sim = pairs.global_cosine(slice(None), slice(None))
    gmn = model.gmn.score_matrix(q, d, sim, chunk_size).float().cpu()
    node = LateInteractionScorer(q.to("cpu"), d.to("cpu"), "max-mean", "cpu")(0, len(q)).float()
    model.train()
    return {"val_mr": mean_recall_of(gmn, pairs.query_image), "val_node_mr": mean_recall_of(node, pairs.query_image)}


def _shared_validation(model: GraphMatcher, val: GraphPairs, reporter: Reporter) -> dict[str, float]:
    """Rank 0 validates, the others receive its numbers (the same weights on every rank after DDP),
    so every rank takes the same early-stopping decision at the cost of one validation."""
    import torch.distributed as dist

    if reporter.world == 1 or not dist.is_initialized():
        return validate(model, val)
    out = torch.zeros(2, dtype=torch.float64)
    if reporter.rank == 0:
        m = validate(model, val)
        out = torch.tensor([m["val_mr"], m["val_node_mr"]], dtype=torch.float64)
    backend_device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    out = out.to(backend_device)
    dist.broadcast(out, src=0)
    return {"val_mr": float(out[0]), "val_node_mr": float(out[1])}


def _loss(cfg: GraphTrainingConfig, scores: torch.Tensor) -> torch.Tensor:
    positives = torch.arange(len(scores), device=scores.device)
    if cfg.loss == "triplet":
        return triplet(scores, positives, cfg.margin, symmetric=cfg.symmetric)
    return info_nce(scores, positives, cfg.temperature, symmetric=cfg.symmetric)


def _epoch_batches(sampler: CaptionPerImageSampler, epoch: int, rank: int, world: int) -> list[list[int]]:
    sampler.set_epoch(epoch)
    batches = list(sampler)
    steps = len(batches) // world  # every worker takes the same number of steps
    return batches[rank::world][:steps]


def train_graph_matcher(data: TrainData, cfg: GraphTrainingConfig, encoder: GraphEncoderConfig, gmn: GMNConfig,
                        reporter: Reporter, device: str | torch.device = "cpu",
                        wrap: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
                        on_epoch: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train; returns the final state (``best_model`` = the best validation epoch's weights).

    ``wrap``: e.g. ``ray.train.torch.prepare_model`` (DDP across workers). ``on_epoch``: called with the
    epoch number before it starts (fault-injection tests kill a worker there).
    """
    train, val = data.train, data.val.head(cfg.val_max_queries)
    node_dim, edge_dim = train.queries.node_dim, int(train.queries.edge_attr.shape[1])
    model = GraphMatcher(encoder, gmn, node_dim, edge_dim, seed=cfg.seed).to(device)
    net = wrap(model) if wrap else model
    sampler = CaptionPerImageSampler(train.query_image.tolist(), cfg.batch_size, seed=cfg.seed, drop_last=True)
    steps = len(sampler) // reporter.world
    if steps < 1:
        raise ValueError(f"{sampler.num_images} training images give no full batch of {cfg.batch_size} per worker "
                         f"x {reporter.world} workers; lower graph_matching.train.batch_size")
    acc = accumulation_steps(cfg.effective_batch_size, cfg.batch_size, reporter.world) if cfg.effective_batch_size else 1
    updates = math.ceil(steps / acc)
    state = reporter.restore()
    if state is None and data.init_state is not None:
        model.load_state_dict(data.init_state)
    # 'auto': the range test on this model's start; a resumed run keeps the rate it found (the schedule's base LR)
    lr = (state or {}).get("lr") or (auto_lr(data, cfg, encoder, gmn) if cfg.lr == "auto" else cfg.lr)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=cfg.weight_decay)
    sched = cosine_scheduler(opt, cfg.epochs * updates, round(cfg.warmup_epochs * updates), cfg.min_lr)
    if state is None:
        state = {"epoch": 0, "best_mr": -1.0, "bad_epochs": 0, "best_model": None, "history": [], "stopped": False,
                 "lr": lr}
    else:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
    use_node = model.trains_encoder and cfg.node_loss_weight > 0
    model.train()
    while state["epoch"] < cfg.epochs and not state["stopped"]:
        epoch = state["epoch"]
        if on_epoch:
            on_epoch(epoch)
        t0, losses = time.perf_counter(), []
        batches = _epoch_batches(sampler, epoch, reporter.rank, reporter.world)
        for i, idx in enumerate(batches):
            q_idx = torch.tensor(idx)
            d_idx = train.query_image[q_idx]
            sim = train.global_cosine(q_idx, d_idx)
            gmn_scores, node_scores = net(select_graphs(train.queries, q_idx), select_graphs(train.docs, d_idx), sim)
            loss = _loss(cfg, gmn_scores)
            if use_node:
                loss = loss + cfg.node_loss_weight * _loss(cfg, node_scores)
            (loss / acc).backward()
            losses.append(float(loss.detach()))
            if (i + 1) % acc == 0 or i == len(batches) - 1:
                torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                opt.step()
                opt.zero_grad(set_to_none=True)
                sched.step()
        metrics = _shared_validation(model, val, reporter)
        metrics.update(epoch=epoch + 1, train_loss=float(np.mean(losses)), lr=opt.param_groups[0]["lr"],
                       epoch_seconds=time.perf_counter() - t0)
        if metrics["val_mr"] > state["best_mr"] + MIN_DELTA:
            state.update(best_mr=metrics["val_mr"], bad_epochs=0, best_epoch=epoch + 1,
                         best_model={k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
        else:
            state["bad_epochs"] += 1
        metrics["best_val_mr"] = state["best_mr"]
        state.update(epoch=epoch + 1, stopped=state["bad_epochs"] >= cfg.patience,
                     model={k: v.detach().cpu() for k, v in model.state_dict().items()},
                     optimizer=opt.state_dict(), scheduler=sched.state_dict())
        state["history"] = [*state["history"], metrics]
        reporter.report(metrics, state if reporter.rank == 0 else None)
    return state



def auto_lr(data: TrainData, cfg: GraphTrainingConfig, encoder: GraphEncoderConfig, gmn: GMNConfig) -> float:
    """The rate ``lr: auto`` trains with: the range test's steepest descent (an error when the test found none)."""
    found = find_lr(data, cfg, encoder, gmn).steepest_lr
    if not math.isfinite(found):
        raise ValueError("lr: auto - the LR range test found no finite loss to descend; set graph_matching.train.lr")
    return float(found)


def find_lr(data: TrainData, cfg: GraphTrainingConfig, encoder: GraphEncoderConfig, gmn: GMNConfig,
            min_lr: float = 1e-6, max_lr: float = 1.0, steps: int = 60) -> Any:
    """LR range test (sec. 5.4.3) on the training batches, from the matcher's starting weights
    (``data.init_state`` when given): the steepest-descent LR and the curve."""
    from rsretrieval.training.lr_finder import lr_finder

    train = data.train
    model = GraphMatcher(encoder, gmn, train.queries.node_dim, int(train.queries.edge_attr.shape[1]), seed=cfg.seed)
    if data.init_state is not None:
        model.load_state_dict(data.init_state)
    sampler = CaptionPerImageSampler(train.query_image.tolist(), cfg.batch_size, seed=cfg.seed, drop_last=True)
    use_node = model.trains_encoder and cfg.node_loss_weight > 0

    def loss_fn(idx: list[int]) -> torch.Tensor:
        q_idx = torch.tensor(idx)
        d_idx = train.query_image[q_idx]
        gmn_scores, node_scores = model(select_graphs(train.queries, q_idx), select_graphs(train.docs, d_idx),
                                        train.global_cosine(q_idx, d_idx))
        loss = _loss(cfg, gmn_scores)
        return loss + cfg.node_loss_weight * _loss(cfg, node_scores) if use_node else loss

    return lr_finder(model, loss_fn, list(sampler), lambda p: torch.optim.AdamW(p, weight_decay=cfg.weight_decay),
                     min_lr=min_lr, max_lr=max_lr, steps=steps)
