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
from rsretrieval.console import progress
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


def _pool_map(fn, jobs: list, workers: int | None, desc: str = ""):
    """``map(fn, jobs)`` in ``workers`` processes (default: the CPU count, at most 8); in this process when small.

    The workers are forked: ``fn`` must not run torch ops (a child forked from a process whose torch thread
    pool has run hangs at its first parallel op), so crops travel as numpy arrays."""
    workers = workers or min(os.cpu_count() or 1, 8)
    if workers > 1 and len(jobs) >= 32:
        with ProcessPoolExecutor(workers) as ex:
            return list(progress(ex.map(fn, jobs, chunksize=16), desc or "crops", len(jobs), "image"))
    return [fn(j) for j in progress(jobs, desc or "crops", len(jobs), "image")]


def crop_boxes(uris: list[str], scenes: ImageScenesConfig, workers: int | None = None) -> list[list[Box]]:
    """Crop boxes of every image (segmentation in ``workers`` processes; default: the CPU count, at most 8)."""
    return _pool_map(_boxes_of, [(u, scenes) for u in uris], workers)


def _image_crops(job: tuple) -> tuple[np.ndarray | None, list[str]]:
    """One train image: its crops' uint8 pixels (k, 3, H, W) and captions. Runs in a worker process, so the
    segmentation, the crop captions and the resizing of all images share the cores."""
    from rsretrieval.data.synthrs import scene_for
    from rsretrieval.data.synthrs_crops import crop_caption

    uri, scenes, config, index, to_uint8 = job
    boxes = _boxes_of((uri, scenes))
    spec = scene_for(config, "train", index)
    rng = np.random.default_rng([CAPTION_SEED, index])
    with Image.open(uri) as im:
        image = im.convert("RGB")
    pixels = [np.asarray(to_uint8(image.crop(box))) for box in boxes]
    captions = [crop_caption(spec, box, rng) for box in boxes]
    return (np.stack(pixels) if pixels else None), captions


def crop_pairs(train: RSDataset, data: SynthRSOptions, scenes: ImageScenesConfig, to_uint8,
               workers: int | None = None) -> CropPairs:
    """The captioned crops of every image of ``train`` (a synthrs train split generated from ``data``).

    ``to_uint8``: PIL crop -> (3, H, W) uint8 array, without torch ops and picklable (worker processes run it)."""
    from rsretrieval.data.synthrs import SynthRSConfig
    from rsretrieval.data.synthrs_crops import image_index

    config = SynthRSConfig(seed=data.seed, n_train=data.n_train, n_val=data.n_val, n_test=data.n_test)
    jobs = []
    for iid, uri in zip(train.images["image_id"].to_pylist(), train.images["uri"].to_pylist()):
        split, index = image_index(iid)
        if split != "train":
            raise ValueError(f"rs-tiny crop pairs come from train images only; got {iid}")
        jobs.append((uri, scenes, config, index, to_uint8))
    pixels, owner, captions = [], [], []
    for i, (crop_pixels, crop_captions) in enumerate(_pool_map(_image_crops, jobs, workers, "rs-tiny crops")):
        if crop_pixels is not None:
            pixels.append(torch.from_numpy(crop_pixels))
            owner += [i] * len(crop_captions)
            captions += crop_captions
    stacked = torch.cat(pixels) if pixels else torch.zeros((0, 3, 1, 1), dtype=torch.uint8)
    return CropPairs(stacked, np.asarray(owner, dtype=np.int64), captions)
