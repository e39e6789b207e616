"""Which weight file a configured backbone uses: its own module, because the benchmark, the query index,
the analysis job and the provenance record all need it (and provenance is written by the benchmark)."""

from __future__ import annotations

import os
from pathlib import Path

from rsretrieval.config import BackboneConfig, BenchmarkConfig
from rsretrieval.data.registry import load_synthrs_dataset


def resolve_checkpoint(bcfg: BackboneConfig, cfg: BenchmarkConfig) -> Path | None:
    """The checkpoint of a backbone: trained on first use for rs-tiny, from the config otherwise."""
    if bcfg.name == "rs-tiny":
        from rsretrieval.encoders.rs_tiny import ensure_rs_tiny

        train = load_synthrs_dataset(bcfg.rs_tiny.train_data, cfg.cache_dir).split("train")
        return ensure_rs_tiny(train, bcfg.rs_tiny, cfg.cache_dir, cfg.image_scenes)
    from rsretrieval.encoders.registry import get_backbone_spec, resolve_checkpoint as find

    spec = get_backbone_spec(bcfg.name)
    ckpt_dir = bcfg.checkpoint_dir or (Path(os.environ["RSR_CHECKPOINT_DIR"]) if os.environ.get("RSR_CHECKPOINT_DIR") else None)
    return find(spec, ckpt_dir, bcfg.checkpoint)
