"""rs-tiny learns crops: captioned crops of synthrs train scenes, batches without repeated images, training."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from rsretrieval.config import ImageScenesConfig, RsTinyOptions, SynthRSOptions
from rsretrieval.data.synthrs import SceneObject2D, SceneSpec, SynthRSConfig, scene_for
from rsretrieval.data.synthrs_crops import crop_caption, crop_spec, image_index
from rsretrieval.data.synthrs_text import build_graph, name_forms, number_word
from rsretrieval.encoders.rs_tiny import epoch_batches, checkpoint_key

TINY = SynthRSOptions(seed=0, n_train=24, n_val=4, n_test=4)


def _spec() -> SceneSpec:
    cars = [SceneObject2D("car", x, 20, 3, 6, 0.0, "white", "small") for x in (10, 20, 30, 200)]
    road = SceneObject2D("road", 128, 40, 8, 264, 90.0, "dark gray", "narrow", "line")  # east-west across the image
    tank = SceneObject2D("storage tank", 220, 220, 14, 14, color="beige", size="medium", shape="circle")
    return SceneSpec("parking", 256, "grass", [], [*cars, road, tank])


def test_crop_spec_keeps_what_is_inside_in_crop_coordinates() -> None:
    sub = crop_spec(_spec(), (0, 0, 100, 100))
    kinds = Counter(o.kind for o in sub.objects)
    assert kinds == {"car": 3, "road": 1}  # the fourth car and the tank are outside
    road = next(o for o in sub.objects if o.kind == "road")
    assert road.h == pytest.approx(100) and road.x == pytest.approx(50) and road.y == pytest.approx(40)  # cut to the box
    assert sub.size == 100 and all(0 <= o.x < 100 and 0 <= o.y < 100 for o in sub.objects if o.kind == "car")
    moved = crop_spec(_spec(), (150, 150, 250, 250))
    assert [(o.kind, o.x, o.y) for o in moved.objects] == [("storage tank", 70, 70)]


def test_crop_captions_state_the_true_counts_of_the_crop() -> None:
    sub_graph = build_graph(crop_spec(_spec(), (0, 0, 100, 100)))
    assert sub_graph.object_counts["car"] == 3
    forms = "|".join(re.escape(f) for f in name_forms("car"))
    for seed in range(30):
        text = crop_caption(_spec(), (0, 0, 100, 100), np.random.default_rng(seed)).lower()
        for m in re.finditer(rf"\b(\w+) (?:\w+ ){{0,3}}(?:{forms})s?\b", text):
            if m.group(1).isdigit() or m.group(1) in {number_word(k) for k in range(20)}:
                assert m.group(1) in ("3", "three"), text


def test_empty_crops_still_get_a_caption() -> None:
    spec = SceneSpec("forest", 256, "forest", [], [])
    assert crop_caption(spec, (0, 0, 50, 50), np.random.default_rng(0)).strip()


def test_epoch_batches_never_repeat_an_image_within_a_step() -> None:
    rng = np.random.default_rng(0)
    steps = epoch_batches(rng, 100, 16, rounds=3)
    assert len(steps) == 100 // 16
    seen_full = []
    for full, crop_rounds in steps:
        items = [*full, *(i for r in crop_rounds for i in r)]
        assert len(items) == 16 * 3 and len(set(items)) == len(items)
        seen_full += list(full)
    assert len(set(seen_full)) == len(seen_full)  # each image's full view at most once per epoch


def test_image_index_reads_synthrs_ids_and_refuses_others() -> None:
    assert image_index("synthrs:train_00012") == ("train", 12)
    with pytest.raises(ValueError, match="not a synthrs image id"):
        image_index("ucm:12.tif")


def test_crop_config_is_part_of_the_checkpoint_key(tmp_path: Path) -> None:
    from rsretrieval.data.registry import load_synthrs_dataset

    train = load_synthrs_dataset(TINY, tmp_path).split("train")
    opts = RsTinyOptions(train_data=TINY)
    grid4 = ImageScenesConfig(uniform={"grid": 4, "overlap": 0.2})
    assert checkpoint_key(opts, train) != checkpoint_key(opts, train, grid4)
    no_crops = opts.model_copy(update={"crops": False})
    assert checkpoint_key(no_crops, train) == checkpoint_key(no_crops, train, grid4)  # crops unused: same weights


def test_crop_pairs_come_from_train_scenes_and_training_uses_them(tmp_path: Path) -> None:
    import torch

    from rsretrieval.data.registry import load_synthrs_dataset
    from rsretrieval.encoders.rs_tiny import train_rs_tiny
    from rsretrieval.encoders.rs_tiny_crops import crop_pairs

    ds = load_synthrs_dataset(TINY, tmp_path)
    train = ds.split("train")
    scenes = ImageScenesConfig(methods=["uniform"])
    pairs = crop_pairs(train, TINY, scenes, lambda im: torch.zeros((3, 8, 8), dtype=torch.uint8))
    assert len(pairs.owner) == 9 * train.images.num_rows  # a 3 x 3 grid per image, no full image
    spec = scene_for(SynthRSConfig(seed=0, n_train=24, n_val=4, n_test=4), "train", 0)
    assert pairs.captions[0] == crop_caption(spec, (0, 0, 98, 98), np.random.default_rng([7, 0]))
    with pytest.raises(ValueError, match="train images only"):
        crop_pairs(ds.split("test"), TINY, scenes, lambda im: torch.zeros((3, 8, 8), dtype=torch.uint8))
    opts = RsTinyOptions(epochs=1, batch_size=16, train_data=TINY)
    stats = train_rs_tiny(train, opts, tmp_path / "rs-tiny.pt", scenes)
    assert opts.crops_per_image == 2  # default: per step 16 // 3 = 5 full views and 2 x 5 crops
    assert stats["crops"] == 9 * 24 and stats["steps"] == 24 // 5
    assert np.isfinite(stats["final_loss"])
