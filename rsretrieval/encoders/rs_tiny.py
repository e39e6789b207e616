"""The embedded backbone ``rs-tiny``: a small open_clip model trained on the synthrs train split.

A fresh machine has no RS checkpoint, so the embedded benchmark trains this model on first use
(symmetric InfoNCE, one random caption per image per epoch so a batch never holds two captions
of one image, AdamW with a cosine schedule) and caches the weights under
``<cache_dir>/backbones/rs-tiny-<key>.pt``, where the key hashes the training options, the
model config, the training data and (with ``crops``) the benchmark's crop config. It only knows
the synthetic world: its numbers on real datasets mean nothing.

With ``crops`` (default) the training pairs also hold crops of the train images, cut as the
benchmark cuts them and captioned from what is inside (:mod:`rsretrieval.encoders.rs_tiny_crops`):
per epoch every image gives its full view with one of its captions and ``crops_per_image`` random
crops with theirs. A batch never holds two items of one image: its full views and its crops come
from disjoint stretches of one permutation of the images.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from rsretrieval.config import ImageScenesConfig, RsTinyOptions
from rsretrieval.console import progress
from rsretrieval.data.schema import RSDataset
from rsretrieval.encoders.text_trim import encode_text_trimmed

log = logging.getLogger(__name__)

MODEL_NAME = "rs-tiny"
_CONFIG_DIR = Path(__file__).parent / "model_configs"


def _model_config() -> dict:
    with open(_CONFIG_DIR / f"{MODEL_NAME}.json", encoding="utf-8") as f:
        return json.load(f)


def checkpoint_key(options: RsTinyOptions, train: RSDataset, scenes: ImageScenesConfig | None = None) -> str:
    """Hash of everything that determines the trained weights."""
    from rsretrieval.encoders.rs_tiny_crops import crop_methods_config

    crops = crop_methods_config(scenes or ImageScenesConfig()) if options.crops else None
    payload = json.dumps(
        {"options": options.model_dump(exclude={"threads"}), "model": _model_config(), "data": train.fingerprint(),
         "crops": crops, "v": 2},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class ToUint8:
    """PIL image -> the model's transform up to ToTensor, as a (3, H, W) uint8 array: the values ToTensor would
    give times 255, without a torch op (crop worker processes run it, and they are forked)."""

    def __init__(self, pil_transforms) -> None:
        self.pil_transforms = pil_transforms

    def __call__(self, image: Image.Image) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(self.pil_transforms(image).convert("RGB"), dtype=np.uint8).transpose(2, 0, 1))


def _load_pixels(uris: list[str], preprocess) -> torch.Tensor:
    """Decode and preprocess every training image once. Shape: (N, 3, H, W) float32."""
    return torch.stack([preprocess(Image.open(u).convert("RGB")) for u in uris])


def _caption_lists(train: RSDataset, variants: list[str] | None = None) -> tuple[list[str], list[list[int]]]:
    """Image uris and, per image, the row indices of its captions (of ``variants``; None = all)."""
    image_ids = train.images["image_id"].to_pylist()
    pos = {iid: i for i, iid in enumerate(image_ids)}
    per_image: list[list[int]] = [[] for _ in image_ids]
    for row, (iid, variant) in enumerate(zip(train.captions["image_id"].to_pylist(),
                                             train.captions["variant"].to_pylist())):
        if iid in pos and (variants is None or variant in variants):
            per_image[pos[iid]].append(row)
    missing = [image_ids[i] for i, c in enumerate(per_image) if not c]
    if missing:
        raise ValueError(f"rs-tiny training: {len(missing)} train images have no caption, e.g. {missing[:3]}")
    return train.images["uri"].to_pylist(), per_image


def epoch_batches(rng: np.random.Generator, n: int, per_batch: int, rounds: int) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """Per step: the images whose full view it trains, and per crop round the images whose crop it trains.

    Round r reads the same permutation shifted by r * n / rounds, so within a step no image repeats
    as long as ``per_batch * rounds <= n``.
    """
    order = rng.permutation(n)
    shifts = [r * n // rounds for r in range(1, rounds)]
    out = []
    for step in range(max(1, n // per_batch)):
        idx = np.arange(step * per_batch, min((step + 1) * per_batch, n))
        out.append((order[idx], [order[(idx + k) % n] for k in shifts]))
    return out


def train_rs_tiny(train: RSDataset, options: RsTinyOptions, out_path: Path,
                  scenes: ImageScenesConfig | None = None) -> dict[str, float]:
    """Train rs-tiny on ``train`` (one split; with ``options.crops`` also on its crops as ``scenes`` cuts them)
    and save its state dict to ``out_path``. Returns training statistics (final loss, seconds, steps)."""
    import open_clip

    from rsretrieval.encoders.loader import ensure_model_configs

    ensure_model_configs()
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    if options.threads:
        torch.set_num_threads(options.threads)
    model, _, preprocess = open_clip.create_model_and_transforms(MODEL_NAME)
    tokenizer = open_clip.get_tokenizer(MODEL_NAME)
    uris, per_image = _caption_lists(train, options.image_variants)
    t0 = time.perf_counter()
    pixels = _load_pixels(uris, preprocess)
    tokens = tokenizer(train.captions["text"].to_pylist())
    n = len(uris)
    crops, crop_rows, rounds = None, [], 1
    if options.crops:
        from torchvision.transforms import Compose, Normalize, ToTensor

        from rsretrieval.encoders.rs_tiny_crops import crop_pairs

        steps = preprocess.transforms
        if not (isinstance(steps[-2], ToTensor) and isinstance(steps[-1], Normalize)):
            raise TypeError(f"rs-tiny crops: expected the transform to end in ToTensor, Normalize; got {steps[-2:]}")
        to_uint8 = ToUint8(Compose(steps[:-2]))  # the PIL steps: resize, crop, RGB
        normalise = steps[-1]
        crops = crop_pairs(train, options.train_data, scenes or ImageScenesConfig(), to_uint8)
        crop_tokens = tokenizer(crops.captions)
        crop_rows = crops.per_image(n)
        rounds = 1 + options.crops_per_image if len(crops.owner) else 1
        log.info("rs-tiny: %d crops of %d train images (%.1f per image) join the training pairs",
                 len(crops.owner), n, len(crops.owner) / max(n, 1))
    bs = min(options.batch_size, n * rounds)
    per_batch = max(1, bs // rounds)  # images whose full view a step trains; as many crops per round
    steps_per_epoch = max(1, n // per_batch)  # drop the last partial batch: InfoNCE needs negatives
    total = steps_per_epoch * options.epochs
    warmup = max(1, steps_per_epoch)
    opt = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, total - warmup))),
    )
    model.train()
    loss_value = float("nan")
    for epoch in range(options.epochs):
        # thesis 5.4.2: one random caption per image per epoch, so no batch holds two captions of one image
        chosen = np.array([per_image[i][rng.integers(len(per_image[i]))] for i in range(n)])
        steps = epoch_batches(rng, n, per_batch, rounds)
        for full_idx, crop_rounds in progress(steps, f"rs-tiny epoch {epoch + 1}/{options.epochs}", len(steps), "step"):
            images, texts = [pixels[full_idx]], [tokens[chosen[full_idx]]]
            for owners in crop_rounds:  # one random crop of each of these images
                rows = np.array([r[rng.integers(len(r))] for r in (crop_rows[o] for o in owners) if len(r)], dtype=np.int64)
                if len(rows):
                    images.append(normalise(crops.pixels[rows].float() / 255))
                    texts.append(crop_tokens[rows])
            img_f = F.normalize(model.encode_image(torch.cat(images)), dim=-1)
            # per group (whole-image captions are short, crop captions long): each is cut to its own longest
            txt_f = F.normalize(torch.cat([encode_text_trimmed(model, t) for t in texts]), dim=-1)
            logits = model.logit_scale.exp() * img_f @ txt_f.T
            labels = torch.arange(len(img_f))
            loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            loss_value = float(loss.detach())
        log.info("rs-tiny epoch %d/%d loss %.3f", epoch + 1, options.epochs, loss_value)
    seconds = time.perf_counter() - t0
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, out_path)  # atomic: a killed training never leaves a half-written checkpoint
    stats = {"final_loss": loss_value, "train_seconds": seconds, "steps": float(total), "images": float(n),
             "crops": float(len(crops.owner)) if crops is not None else 0.0}
    with open(out_path.with_suffix(".json"), "w", encoding="utf-8") as f:
        json.dump({"options": options.model_dump(), "stats": stats}, f, indent=2)
    return stats


_ANNOUNCED: set[Path] = set()


def rs_tiny_path(train: RSDataset, options: RsTinyOptions, cache_dir: Path,
                 scenes: ImageScenesConfig | None = None) -> Path:
    """Where the rs-tiny checkpoint for (options, data, crop config) is cached."""
    return Path(cache_dir) / "backbones" / f"{MODEL_NAME}-{checkpoint_key(options, train, scenes)}.pt"


def ensure_rs_tiny(train: RSDataset, options: RsTinyOptions, cache_dir: Path,
                   scenes: ImageScenesConfig | None = None) -> Path:
    """Path of the trained rs-tiny checkpoint for (options, data, crop config); trains it when not cached."""
    path = rs_tiny_path(train, options, cache_dir, scenes)
    if path.exists():
        if path not in _ANNOUNCED:  # resolved once per backbone use; say it once per process
            _ANNOUNCED.add(path)
            log.info("rs-tiny: using cached weights %s", path)
        return path
    log.info("rs-tiny: training on %d synthrs train images (first use; cached at %s)", train.images.num_rows, path)
    train_rs_tiny(train, options, path, scenes)
    return path
