"""Learning-rate schedule and batch-size helpers (thesis section 5.4.3).

* :func:`lr_at` / :func:`cosine_scheduler`: cosine annealing [22] with optional linear warm-up.
* :func:`accumulation_steps`, :func:`effective_batch_size`, :class:`Accumulator`: gradient
  accumulation, eq. 8 (effective batch = accumulation steps x parallel workers x batch size).
* :func:`lr_finder`, :func:`save_plot` (re-exported from :mod:`.lr_finder`): LR range test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from .lr_finder import LRFinderResult, lr_finder, save_plot

__all__ = [
    "lr_at",
    "cosine_scheduler",
    "effective_batch_size",
    "accumulation_steps",
    "Accumulator",
    "LRFinderResult",
    "lr_finder",
    "save_plot",
]


def lr_at(
    step: int,
    total_steps: int,
    base_lr: float,
    warmup_steps: int = 0,
    min_lr: float = 0.0,
) -> float:
    """Learning rate at optimizer step ``step`` (0-based).

    Warm-up (``step < warmup_steps``) rises linearly from 0 to ``base_lr``
    (``base_lr * step / warmup_steps``, the Hugging Face convention); afterwards the rate
    follows ``min_lr + (base_lr - min_lr) * (1 + cos(pi * t)) / 2`` with
    ``t = (step - warmup_steps) / (total_steps - warmup_steps)`` clamped to [0, 1], so
    ``lr_at(warmup_steps) == base_lr`` and ``lr_at(total_steps) == min_lr`` (and stays there).
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"warmup_steps must be in [0, total_steps], got {warmup_steps}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    decay_steps = total_steps - warmup_steps
    t = 1.0 if decay_steps == 0 else min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))


def cosine_scheduler(
    optimizer: Optimizer,
    total_steps: int,
    warmup_steps: int = 0,
    min_lr: float = 0.0,
) -> LambdaLR:
    """A ``LambdaLR`` applying :func:`lr_at` to every param group (call ``.step()`` per optimizer step).

    Each group's current ``lr`` is its base rate; ``min_lr`` is absolute and shared.
    """
    lambdas = []
    for group in optimizer.param_groups:
        base = group.get("initial_lr", group["lr"])
        if base <= 0:
            raise ValueError("param group learning rates must be > 0 for a cosine schedule")
        # bind base per group; LambdaLR multiplies the factor by the group's initial_lr
        lambdas.append(lambda s, b=base: lr_at(s, total_steps, b, warmup_steps, min_lr) / b)
    return LambdaLR(optimizer, lr_lambda=lambdas)


def effective_batch_size(batch_size: int, accumulation: int = 1, workers: int = 1) -> int:
    """Eq. 8: effective batch = accumulation steps x parallel workers (devices) x per-step batch."""
    for name, value in (("batch_size", batch_size), ("accumulation", accumulation), ("workers", workers)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    return accumulation * workers * batch_size


def accumulation_steps(effective_batch: int, batch_size: int, workers: int = 1) -> int:
    """Accumulation steps reaching ``effective_batch`` (inverse of eq. 8).

    Raises ``ValueError`` if ``effective_batch`` is not a positive multiple of
    ``batch_size * workers``: silently rounding would change the contrastive batch the
    learning rate was tuned for.
    """
    per_step = effective_batch_size(batch_size, 1, workers)
    if effective_batch < per_step or effective_batch % per_step:
        raise ValueError(
            f"effective batch size {effective_batch} is not a positive multiple of "
            f"batch_size x workers = {batch_size} x {workers} = {per_step}; "
            f"choose e.g. {max(1, round(effective_batch / per_step)) * per_step}"
        )
    return effective_batch // per_step


@dataclass
class Accumulator:
    """Counts micro-batches and says when to call ``optimizer.step()``.

    Typical loop::

        acc = Accumulator(accumulation_steps(256, 32))
        for i, batch in enumerate(loader):
            acc.scale(loss_fn(batch)).backward()
            if acc.tick(last=i == len(loader) - 1):
                optimizer.step(); optimizer.zero_grad()

    ``scale`` divides the loss by ``steps`` so the accumulated gradient is the mean over the
    effective batch; ``tick(last=True)`` forces a step for a trailing partial group so no
    gradient is carried into the next epoch.
    """

    steps: int
    pending: int = field(default=0, init=False)
    updates: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")

    def scale(self, loss: Tensor) -> Tensor:
        """Loss divided by the number of accumulated micro-batches."""
        return loss / self.steps

    def tick(self, last: bool = False) -> bool:
        """Register one micro-batch; True when the optimizer should step now."""
        self.pending += 1
        if self.pending >= self.steps or last:
            self.pending = 0
            self.updates += 1
            return True
        return False
