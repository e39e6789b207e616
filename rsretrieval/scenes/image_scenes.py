"""Image scenes of one image and the ``image_scenes`` table (image_id, scene_idx, box, method).

Scene 0 is the full image (method ``full``) when ``include_full``; then the crops of one crop
method: ``uniform`` grid boxes, or segment boxes aggregated into regions (method ``sam2`` or
``segments``, whichever segmenter ran). An image whose segmentation yields no region keeps only
its full-image scene (or, with ``include_full`` off, gets it anyway: a set is never empty).
Crops are always cut from the original-resolution file, then preprocessed by the backbone.
"""

from __future__ import annotations

import hashlib
import json
from typing import Iterable

import pyarrow as pa
from PIL import Image

from rsretrieval.config import CropMethod, ImageScenesConfig
from rsretrieval.scenes.boxes import Box, aggregate_boxes, full_box, uniform_grid_boxes
from rsretrieval.scenes.segmenters import Segmenter

IMAGE_SCENES_SCHEMA = pa.schema([
    ("image_id", pa.string()),
    ("scene_idx", pa.int32()),
    ("x0", pa.int32()), ("y0", pa.int32()), ("x1", pa.int32()), ("y1", pa.int32()),
    ("method", pa.string()),
])
IMAGE_SCENES_VERSION = 1  # bump when box computation changes (invalidates cached scene tables)


def scene_id(owner_id: str, scene_idx: int) -> str:
    """Id of one scene of an image or caption (the embedding cache key of the scene)."""
    return f"{owner_id}#{scene_idx}"


def crop_config(method: CropMethod, cfg: ImageScenesConfig) -> dict:
    """The part of the config that determines the boxes of ``method`` (hashed into cache keys)."""
    part = cfg.uniform if method == "uniform" else cfg.regions
    return {"method": method, "include_full": cfg.include_full, "v": IMAGE_SCENES_VERSION,
            **part.model_dump(mode="json")}


def crop_key(method: CropMethod, cfg: ImageScenesConfig) -> str:
    return hashlib.sha256(json.dumps(crop_config(method, cfg), sort_keys=True).encode()).hexdigest()[:12]


def image_scene_boxes(image: Image.Image, method: CropMethod, cfg: ImageScenesConfig,
                      segmenter: Segmenter | None = None) -> list[tuple[Box, str]]:
    """(box, method) of every scene of ``image``, full image first."""
    w, h = image.size
    out: list[tuple[Box, str]] = [(full_box(w, h), "full")] if cfg.include_full else []
    if method == "uniform":
        out += [(b, "uniform") for b in uniform_grid_boxes(w, h, cfg.uniform.grid, cfg.uniform.overlap)]
    else:
        if segmenter is None:
            raise ValueError("region crops need a segmenter (see rsretrieval.scenes.segmenters.make_segmenter)")
        r = cfg.regions
        regions = aggregate_boxes(segmenter.boxes(image), w, h, max_regions=r.max_regions,
                                  min_area_frac=r.min_area_frac, max_area_frac=r.max_area_frac,
                                  merge_distance=r.merge_distance, min_side_frac=r.min_side_frac)
        out += [(b, segmenter.method) for b in regions]
    return out or [(full_box(w, h), "full")]


def scenes_rows(image_id: str, scenes: Iterable[tuple[Box, str]]) -> list[dict]:
    return [{"image_id": image_id, "scene_idx": i, "x0": b[0], "y0": b[1], "x1": b[2], "y1": b[3], "method": m}
            for i, (b, m) in enumerate(scenes)]


def crop(image: Image.Image, box: Box) -> Image.Image:
    """The original-resolution pixels of ``box`` (the backbone's transform resizes afterwards)."""
    return image.crop(box)
