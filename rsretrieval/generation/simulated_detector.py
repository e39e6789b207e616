"""A simulated object detector on synthrs: the scene's ground-truth boxes with detector-like errors.

Gives the embedded benchmark a second simulated image-graph source beside the simulated VLM (``boxes``):
objects are missed (small ones more often), box edges jitter, look-alike categories are confused, and a few
spurious small boxes appear. Deterministic per (seed, image id). Not a model: tables label it simulated.
"""

from __future__ import annotations

import hashlib

import numpy as np

from rsretrieval.config import SimulatedDetectorConfig
from rsretrieval.data.synthrs_scenes import SceneSpec
from rsretrieval.graphs.from_boxes import Box

NAME = "simulated-detector@v1"
LOOK_ALIKE = {"car": "container", "container": "car", "house": "building", "building": "warehouse",
              "warehouse": "building", "storage tank": "swimming pool", "swimming pool": "storage tank",
              "ship": "container", "plane": "ship", "tennis court": "soccer field", "soccer field": "tennis court"}
FALSE_POSITIVE_KINDS = (("car", 3.0, 6.0), ("container", 4.0, 10.0), ("storage tank", 7.0, 7.0))  # kind, w, h (px)


def _rng(seed: int, owner_id: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{NAME}|{seed}|{owner_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def simulate_detections(spec: SceneSpec, owner_id: str, cfg: SimulatedDetectorConfig, seed: int = 0) -> list[Box]:
    """Detected boxes of one synthrs scene: ground truth with misses, jitter, confusions and false positives."""
    rng = _rng(seed, owner_id)
    out: list[Box] = []
    for o in spec.objects:
        if rng.random() >= (cfg.small_recall if o.size == "small" else cfg.recall):
            continue  # missed
        x0, y0, x1, y1 = o.bbox()
        w, h = x1 - x0, y1 - y0
        dx0, dx1 = rng.normal(0, cfg.jitter * w, 2)
        dy0, dy1 = rng.normal(0, cfg.jitter * h, 2)
        x0, x1 = sorted((x0 + dx0, x1 + dx1))
        y0, y1 = sorted((y0 + dy0, y1 + dy1))
        x0, y0, x1, y1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(spec.size)), min(y1, float(spec.size))
        if x1 - x0 < 1 or y1 - y0 < 1:
            continue
        kind = LOOK_ALIKE.get(o.kind, o.kind) if rng.random() < cfg.confusion else o.kind
        out.append(Box.xyxy(kind, x0, y0, x1, y1, float(rng.uniform(cfg.min_score, 1.0))))
    for _ in range(int(rng.poisson(cfg.false_positives))):
        kind, w, h = FALSE_POSITIVE_KINDS[int(rng.integers(len(FALSE_POSITIVE_KINDS)))]
        x, y = rng.uniform(0, spec.size - w), rng.uniform(0, spec.size - h)
        out.append(Box.xyxy(kind, x, y, x + w, y + h, float(rng.uniform(0.0, 0.6))))
    return out
