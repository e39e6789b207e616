"""Crop training pairs of the embedded rs-tiny: the benchmark's crops of synthrs train images, captioned.

For every train image: the uniform grid cells and the region crops of the benchmark's own crop
config (``image_scenes``: the same :func:`~rsretrieval.scenes.image_scenes.image_scene_boxes`, the
same segmenter), each captioned from the ground-truth objects inside it
(:func:`~rsretrieval.data.synthrs_crops.crop_caption`). Pixels go through the model's transform up to
its last step and are kept as uint8 (the float copies of ~20 crops per image would take GBs); the
training loop normalises a batch at a time. Test and validation images are never read here.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from rsretrieval.config import ImageScenesConfig, SynthRSOptions
from rsretrieval.data.schema import RSDataset
from rsretrieval.scenes.boxes import Box

CAPTION_SEED = 7  # caption wording of crops: fixed per (image, crop), independent of the training seed


@dataclass
class CropPairs:
    """Crop pixels (M, 3, H, W) uint8, the image each crop comes from (M,), and its caption (M)."""

    pixels: torch.Tensor
    owner: np.ndarray
    captions: list[str]

    def per_image(self, n_images: int) -> list[np.ndarray]:
        """Crop rows of every image (empty for an image without crops)."""
        order = np.argsort(self.owner, kind="stable")
        bounds = np.searchsorted(self.owner[order], np.arange(n_images + 1))
        return [order[bounds[i]:bounds[i + 1]] for i in range(n_images)]


def crop_methods_config(scenes: ImageScenesConfig) -> dict:
    """The part of the crop config that changes the crops (hashed into rs-tiny's checkpoint key)."""
    from rsretrieval.scenes.image_scenes import crop_config

    return {m: crop_config(m, scenes) for m in scenes.methods}


def _boxes_of(args: tuple[str, ImageScenesConfig]) -> list[Box]:
    """Every crop box (no full image) of one image, for every configured crop method."""
    from rsretrieval.scenes.image_scenes import image_scene_boxes
    from rsretrieval.scenes.segmenters import make_segmenter

    uri, scenes = args
    with Image.open(uri) as im:
        image = im.convert("RGB")
    out: list[Box] = []
    for method in scenes.methods:
        segmenter = make_segmenter(scenes.regions) if method == "regions" else None
        out += [b for b, m in image_scene_boxes(image, method, scenes, segmenter) if m != "full"]
    return out


def crop_boxes(uris: list[str], scenes: ImageScenesConfig, workers: int | None = None) -> list[list[Box]]:
    """Crop boxes of every image (segmentation in ``workers`` processes; default: the CPU count, at most 8)."""
    workers = workers or min(os.cpu_count() or 1, 8)
    jobs = [(u, scenes) for u in uris]
    if workers > 1 and len(jobs) >= 32:
        with ProcessPoolExecutor(workers) as ex:
            return list(ex.map(_boxes_of, jobs, chunksize=16))
    return [_boxes_of(j) for j in jobs]


def crop_pairs(train: RSDataset, data: SynthRSOptions, scenes: ImageScenesConfig, to_uint8) -> CropPairs:
    """The captioned crops of every image of ``train`` (a synthrs train split generated from ``data``)."""
    from rsretrieval.data.synthrs import SynthRSConfig, scene_for
    from rsretrieval.data.synthrs_crops import crop_caption, image_index

    config = SynthRSConfig(seed=data.seed, n_train=data.n_train, n_val=data.n_val, n_test=data.n_test)
    uris = train.images["uri"].to_pylist()
    boxes = crop_boxes(uris, scenes)
    pixels, owner, captions = [], [], []
    for i, (iid, uri) in enumerate(zip(train.images["image_id"].to_pylist(), uris)):
        split, index = image_index(iid)
        if split != "train":
            raise ValueError(f"rs-tiny crop pairs come from train images only; got {iid}")
        spec = scene_for(config, split, index)
        rng = np.random.default_rng([CAPTION_SEED, index])
        with Image.open(uri) as im:
            image = im.convert("RGB")
        for box in boxes[i]:
            pixels.append(to_uint8(image.crop(box)))
            owner.append(i)
            captions.append(crop_caption(spec, box, rng))
    stacked = torch.stack(pixels) if pixels else torch.zeros((0, 3, 1, 1), dtype=torch.uint8)
    return CropPairs(stacked, np.asarray(owner, dtype=np.int64), captions)
