"""Constants and the stage clock shared by the GMN (:mod:`rsretrieval.matching.gmn`) and its batched
kernel (:mod:`rsretrieval.matching.gmn_blocks`); apart from both so that neither imports the other back."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

FIXED_HALF_WIDTH = 1.0 + 1e-4  # fixed range [-R, R]: cosines of exactly +-1 and fp overshoot stay in range
TOP_MARGIN = 1e-3  # dynamic range: t_max = bins - TOP_MARGIN, so the max is binned without a clamp pass
RANGE_EPS = 1e-6  # dynamic range of a constant S: everything lands in bin 0
# similarity entries per block: on CPU ~6 MB fp32, so a block's buffers stay near cache (tuned on 2 cores,
# flat from 0.6M to 2M); on GPUs far more, so that kernel launches do not dominate
BLOCK_ELEMENTS = {"cpu": 1_500_000, "cuda": 1 << 26}


def stage_clock(profile: dict[str, float] | None, device: torch.device) -> Callable[[str], None]:
    """``tick(name)``: add the seconds since the last tick to ``profile[name]`` (no-op without profile)."""
    last = [time.perf_counter()]

    def tick(name: str) -> None:
        if profile is None:
            return
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        now = time.perf_counter()
        profile[name] = profile.get(name, 0.0) + now - last[0]
        last[0] = now

    return tick
