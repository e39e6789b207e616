"""Scenes of a dataset split for the benchmark: image crops per method and text scenes, computed or
loaded from the cache, with their stage seconds in the ledger and the footnotes that say how they
were made (so a table never hides an offline stand-in)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from rsretrieval.config import SCENE_IMAGE_MODES, SCENE_TEXT_MODES, BenchmarkConfig
from rsretrieval.data.schema import RSDataset
from rsretrieval.evaluation.cost import StageLedger
from rsretrieval.pipelines.benchmark.costs import add_generation, timed_cached_stage


@dataclass
class DatasetScenes:
    """Scene tables of one dataset split, shared by every backbone (boxes do not depend on it)."""

    image: dict[str, pa.Table]  # crop method -> image_scenes table
    text: pa.Table | None  # text_scenes of every caption
    crop_names: dict[str, str]  # crop method -> name in the results ('uniform', 'segments', 'sam2')
    generation: list[dict[str, Any]] = field(default_factory=list)  # accounting rows of generated text scenes
    notes: list[str] = field(default_factory=list)


def prepare_scenes(cfg: BenchmarkConfig, ds: RSDataset, ledger: StageLedger) -> DatasetScenes:
    """Compute (or load cached) image scenes per crop method and text scenes, as the modes need."""
    from rsretrieval.pipelines.stages.scene_crops import image_scenes, image_scenes_path, text_scenes, text_scenes_path
    from rsretrieval.scenes.segmenters import region_method

    image, names = {}, {}
    if any(m in SCENE_IMAGE_MODES for m in cfg.modes):
        for method in cfg.image_scenes.methods:
            names[method] = "uniform" if method == "uniform" else region_method(cfg.image_scenes.regions)
            image[method] = timed_cached_stage(
                ledger, ds.name, f"crop:{names[method]}", ds.images.num_rows,
                lambda: image_scenes_path(ds.images, method, cfg.image_scenes, cfg.cache_dir),
                lambda: image_scenes(ds.images, method, cfg.image_scenes, cfg.cache_dir))
    out = DatasetScenes(image, None, names)
    if any(m in SCENE_TEXT_MODES for m in cfg.modes):
        if cfg.text_scenes.generator == "gemini":
            from rsretrieval.pipelines.benchmark.generation import generated_text_scenes

            out.text, out.generation, out.notes = generated_text_scenes(cfg, ds)
            add_generation(ledger, out.generation)
        else:
            out.text = timed_cached_stage(ledger, ds.name, "gen:text_scenes", ds.captions.num_rows,
                                          lambda: text_scenes_path(ds.captions, cfg.text_scenes, cfg.cache_dir),
                                          lambda: text_scenes(ds.captions, cfg.text_scenes, cfg.cache_dir))
    return out


def scene_notes(cfg: BenchmarkConfig, scenes: DatasetScenes) -> list[str]:
    """Footnotes that say how scenes were made (so a table never hides an offline stand-in)."""
    notes = list(scenes.notes)
    if scenes.text is not None and cfg.text_scenes.generator == "split":
        n_caps = len(set(scenes.text["caption_id"].to_pylist()))
        gen = [s for s in set(scenes.text["source"].to_pylist()) if s != "full"]
        with_scenes = len({c for c, s in zip(scenes.text["caption_id"].to_pylist(), scenes.text["source"].to_pylist())
                           if s != "full"})
        notes.append(f"text scenes: {', '.join(gen) or cfg.text_scenes.generator} (offline sentence splitter unless "
                     f"named gemini); {with_scenes}/{n_caps} captions split, the rest kept whole")
    if scenes.crop_names.get("regions") == "segments":
        notes.append("regions crops: classical Felzenszwalb segments (no SAM 2 checkpoint configured), clustered into regions")
    return notes
