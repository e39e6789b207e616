"""Learning-rate range test (thesis section 5.4.3, "FindLR"; Smith 2017 / torch-lr-finder).

The LR grows exponentially from ``min_lr`` to ``max_lr`` over ``steps`` optimizer steps; the
exponentially smoothed training loss is recorded and the suggested LR is where the smoothed
loss falls fastest (most negative slope w.r.t. log LR). Model, optimizer and torch RNG states
are restored afterwards, so the test has no side effect on the subsequent training run.
"""

from __future__ import annotations

import copy
import csv
import itertools
import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

__all__ = ["LRFinderResult", "lr_finder", "save_plot"]


@dataclass
class LRFinderResult:
    """Outcome of :func:`lr_finder`: tried LRs, smoothed (and raw) losses, the suggestion."""

    lrs: list[float]
    losses: list[float]  # exponentially smoothed
    steepest_lr: float
    raw_losses: list[float]
    diverged: bool


def _steepest(lrs: list[float], losses: list[float]) -> float:
    """LR at the most negative slope of loss vs log10(lr) (central differences)."""
    if len(losses) < 2:
        return lrs[0] if lrs else math.nan
    x = torch.tensor([math.log10(lr) for lr in lrs], dtype=torch.float64)
    y = torch.tensor(losses, dtype=torch.float64)
    (grad,) = torch.gradient(y, spacing=(x,))
    return lrs[int(torch.argmin(grad))]


def lr_finder(
    model: nn.Module,
    loss_fn: Callable[[Any], Tensor],
    batches: Iterable[Any],
    optimizer_factory: Callable[[Iterable[nn.Parameter]], Optimizer] | Optimizer,
    min_lr: float = 1e-7,
    max_lr: float = 10.0,
    steps: int = 100,
    smooth: float = 0.05,
    diverge: float = 4.0,
) -> LRFinderResult:
    """Run an exponential LR range test and suggest the LR of steepest loss descent.

    Args:
        model: trained in place during the test, then restored to its initial state.
        loss_fn: ``loss_fn(batch) -> scalar Tensor`` (moves the batch to the device itself).
        batches: training batches; re-iterated when exhausted (a one-shot iterator simply
            ends the test early).
        optimizer_factory: ``params -> Optimizer``, or an existing optimizer whose state is
            saved and restored.
        min_lr, max_lr, steps: geometric LR grid, ``steps >= 2`` points.
        smooth: weight of the new loss in the exponential moving average (0 < smooth <= 1).
        diverge: stop once the smoothed loss exceeds ``diverge x`` the best smoothed loss.
    """
    if not 0 < min_lr < max_lr:
        raise ValueError(f"need 0 < min_lr < max_lr, got {min_lr}, {max_lr}")
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    if not 0 < smooth <= 1:
        raise ValueError(f"smooth must be in (0, 1], got {smooth}")

    model_state = copy.deepcopy(model.state_dict())
    was_training = model.training
    rng_state = torch.get_rng_state()
    if isinstance(optimizer_factory, Optimizer):
        optimizer = optimizer_factory
        opt_state = copy.deepcopy(optimizer.state_dict())
    else:
        optimizer = optimizer_factory(model.parameters())
        opt_state = None

    ratio = (max_lr / min_lr) ** (1.0 / (steps - 1))
    lrs: list[float] = []
    raw: list[float] = []
    smoothed: list[float] = []
    diverged = False
    best = math.inf
    source = iter(batches)
    restartable = source is not batches  # a re-iterable container, not a one-shot iterator
    try:
        model.train()
        for i in range(steps):
            try:
                batch = next(source)
            except StopIteration:
                if not restartable:
                    break
                source = iter(batches)
                batch = next(source, None)
                if batch is None:  # empty iterable
                    break
            lr = min_lr * ratio**i
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad()
            loss = loss_fn(batch)
            loss.backward()
            optimizer.step()

            value = float(loss.detach())
            lrs.append(lr)
            raw.append(value)
            avg = value if not smoothed else smooth * value + (1 - smooth) * smoothed[-1]
            smoothed.append(avg)
            best = min(best, avg)
            if not math.isfinite(avg) or avg > diverge * best:
                diverged = True
                break
    finally:
        # restore everything the test touched, even if loss_fn raised
        model.load_state_dict(model_state)
        model.train(was_training)
        torch.set_rng_state(rng_state)
        if opt_state is not None:
            optimizer.load_state_dict(opt_state)
        optimizer.zero_grad(set_to_none=True)

    # the diverged point (often inf/nan) would dominate the slope: leave it out of the search
    n = len(lrs) - 1 if diverged else len(lrs)
    finite = [(lr, v) for lr, v in zip(lrs[:n], smoothed[:n]) if math.isfinite(v)]
    steepest = _steepest([lr for lr, _ in finite], [v for _, v in finite]) if finite else math.nan
    return LRFinderResult(lrs, smoothed, steepest, raw, diverged)


def save_plot(result: LRFinderResult, path: str | Path) -> Path:
    """Plot smoothed loss vs LR (log x) with the suggestion marked, as a PNG (cf. Figure 18a).

    matplotlib is imported lazily and drawn with the Agg canvas (no global backend switch).
    Without matplotlib, a CSV (``lr,loss,raw_loss``) is written next to ``path`` instead, with
    a warning; the path actually written is returned.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        csv_path = path.with_suffix(".csv")
        warnings.warn(f"matplotlib is not installed: wrote LR-finder data to {csv_path} instead of a plot")
        with csv_path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["lr", "loss", "raw_loss"])
            writer.writerows(itertools.zip_longest(result.lrs, result.losses, result.raw_losses))
        return csv_path

    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(result.lrs, result.losses, label="smoothed loss")
    if math.isfinite(result.steepest_lr):
        ax.axvline(result.steepest_lr, color="red", linestyle="--", label=f"steepest: {result.steepest_lr:.2e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.set_title("LR range test")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path
