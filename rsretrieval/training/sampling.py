"""Contamination-free batching for multi-caption datasets (thesis section 5.4.2).

RSICD, RSITMD, ... give several captions per image. If two captions of one image land in
the same contrastive batch, one of them is a "negative" that is really a positive, which breaks
the diagonal assumption of the in-batch similarity matrix. :class:`CaptionPerImageSampler`
implements both remedies of the thesis at once:

1. random caption selection per epoch: each epoch draws ONE caption per image;
2. constrained shuffling: images are shuffled and chunked into batches.

Because every image contributes exactly one caption per epoch, no batch can hold two captions
of the same image; this holds by construction, not by rejection sampling.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence

from torch.utils.data import Sampler

__all__ = ["CaptionPerImageSampler"]


class CaptionPerImageSampler(Sampler[list[int]]):
    """Batch sampler yielding lists of caption indices, one caption per image per epoch.

    Use as ``DataLoader(caption_dataset, batch_sampler=sampler)``, and call
    ``sampler.set_epoch(epoch)`` before each epoch (as with ``DistributedSampler``); without
    it every epoch repeats the same captions and order.

    Args:
        image_ids_of_captions: ``image_ids_of_captions[k]`` is the image id of caption k
            (dataset index k).
        batch_size: captions (= distinct images) per batch.
        seed: base seed; epoch e uses ``seed + e``, so the sampler is deterministic per
            (seed, epoch) regardless of how often it is iterated.
        drop_last: drop the final partial batch (useful when the loss needs a fixed B).
    """

    def __init__(
        self,
        image_ids_of_captions: Sequence[str],
        batch_size: int,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        # group caption indices by image, in first-appearance order so the grouping (and
        # hence every draw) depends only on the input list, not on hashing
        groups: dict[str, list[int]] = {}
        for k, image_id in enumerate(image_ids_of_captions):
            groups.setdefault(image_id, []).append(k)
        self.image_ids: list[str] = list(groups)
        self.captions_per_image: list[list[int]] = list(groups.values())
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose caption draw and image order the next iteration uses."""
        self.epoch = epoch

    @property
    def num_images(self) -> int:
        """Number of distinct images (= captions used per epoch)."""
        return len(self.image_ids)

    def epoch_captions(self, epoch: int | None = None) -> list[int]:
        """The shuffled caption indices of one epoch: one caption per image."""
        rng = random.Random(self.seed + (self.epoch if epoch is None else epoch))
        chosen = [rng.choice(caps) for caps in self.captions_per_image]
        rng.shuffle(chosen)
        return chosen

    def __iter__(self) -> Iterator[list[int]]:
        captions = self.epoch_captions()
        for start in range(0, len(captions), self.batch_size):
            batch = captions[start : start + self.batch_size]
            if self.drop_last and len(batch) < self.batch_size:
                return
            yield batch

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_images // self.batch_size
        return math.ceil(self.num_images / self.batch_size)
