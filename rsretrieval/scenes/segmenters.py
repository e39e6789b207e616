"""Segmenters that turn an image into segment boxes: SAM 2 automatic masks, or a classical one.

SAM 2 needs a checkpoint the user provides (``sam2_checkpoint``); without one, a classical
segmenter (scikit-image Felzenszwalb or SLIC) feeds the same box aggregation, and the method
recorded in the ``image_scenes`` table says which ran (``sam2`` or ``segments``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from rsretrieval._lazy import lazy_import
from rsretrieval.config import RegionCropConfig
from rsretrieval.scenes.boxes import Box, label_boxes

log = logging.getLogger(__name__)


class Segmenter(Protocol):
    """Anything that maps an RGB image to segment boxes in its own pixel coordinates."""

    method: str  # recorded per image_scenes row: "sam2" or "segments"

    def boxes(self, image: Image.Image) -> list[Box]: ...


def _downscale(image: Image.Image, max_side: int) -> tuple[Image.Image, float]:
    """Image no larger than ``max_side`` and the factor that maps its pixels back to the original."""
    scale = max(image.size) / max_side
    if scale <= 1:
        return image, 1.0
    size = (max(1, round(image.width / scale)), max(1, round(image.height / scale)))
    return image.resize(size, Image.BILINEAR), image.width / size[0]


def _rescale(boxes: list[Box], factor: float, width: int, height: int) -> list[Box]:
    if factor == 1.0:
        return boxes
    out = []
    for x0, y0, x1, y1 in boxes:
        out.append((int(x0 * factor), int(y0 * factor), min(width, int(np.ceil(x1 * factor))),
                    min(height, int(np.ceil(y1 * factor)))))
    return out


class ClassicalSegmenter:
    """scikit-image Felzenszwalb (graph-based) or SLIC (superpixels) on a downscaled copy."""

    method = "segments"

    def __init__(self, cfg: RegionCropConfig, algorithm: str = "felzenszwalb") -> None:
        self.cfg = cfg
        self.algorithm = algorithm
        self._seg = lazy_import("skimage.segmentation")

    def labels(self, image: Image.Image) -> tuple[np.ndarray, float]:
        small, factor = _downscale(image.convert("RGB"), self.cfg.segment_max_side)
        arr = np.asarray(small)
        if self.algorithm == "slic":
            lab = self._seg.slic(arr, n_segments=self.cfg.slic_segments, compactness=10.0, start_label=0)
        else:
            lab = self._seg.felzenszwalb(arr, scale=self.cfg.felzenszwalb_scale,
                                         sigma=self.cfg.felzenszwalb_sigma, min_size=self.cfg.felzenszwalb_min_size)
        return lab, factor

    def boxes(self, image: Image.Image) -> list[Box]:
        lab, factor = self.labels(image)
        return _rescale(label_boxes(lab), factor, image.width, image.height)


class Sam2Segmenter:
    """SAM 2 automatic mask generator; one box per mask (the ``bbox`` SAM reports, XYWH)."""

    method = "sam2"

    def __init__(self, cfg: RegionCropConfig, device: str = "cpu") -> None:
        lazy_import("sam2")
        import torch
        from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
        from sam2.build_sam import build_sam2

        ckpt = str(cfg.sam2_checkpoint) if cfg.sam2_checkpoint else None
        if ckpt and not Path(ckpt).is_file():
            raise FileNotFoundError(
                f"regions.sam2_checkpoint {ckpt} does not exist: download a SAM 2 checkpoint (e.g. "
                "sam2.1_hiera_tiny.pt from the SAM 2 release) and point the config at it")
        if ckpt is None:
            log.warning("SAM 2 without a checkpoint: random weights (only for tests of the code path)")
            torch.manual_seed(0)
        model = build_sam2(cfg.sam2_config, ckpt_path=ckpt, device=device, mode="eval")
        self.generator = SAM2AutomaticMaskGenerator(
            model, points_per_side=cfg.sam2_points_per_side, points_per_batch=cfg.sam2_points_per_batch,
            pred_iou_thresh=cfg.sam2_pred_iou_thresh, stability_score_thresh=cfg.sam2_stability_score_thresh)
        self.max_side = cfg.sam2_max_side

    def boxes(self, image: Image.Image) -> list[Box]:
        small, factor = _downscale(image.convert("RGB"), self.max_side)
        masks = self.generator.generate(np.asarray(small))
        boxes = []
        for m in masks:
            x, y, w, h = m["bbox"]
            boxes.append((int(x), int(y), int(np.ceil(x + w)), int(np.ceil(y + h))))
        return _rescale(boxes, factor, image.width, image.height)


def region_method(cfg: RegionCropConfig) -> str:
    """The ``method`` that region crops of this config record: 'sam2' or 'segments'."""
    return "sam2" if cfg.segmenter == "sam2" or (cfg.segmenter == "auto" and cfg.sam2_checkpoint) else "segments"


def make_segmenter(cfg: RegionCropConfig, device: str = "cpu") -> Segmenter:
    """The configured segmenter; ``auto`` = SAM 2 when a checkpoint is given, else Felzenszwalb."""
    choice = cfg.segmenter
    if choice == "auto":
        choice = "sam2" if cfg.sam2_checkpoint else "felzenszwalb"
    if choice == "sam2":
        return Sam2Segmenter(cfg, device)
    return ClassicalSegmenter(cfg, choice)
