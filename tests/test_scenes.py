"""Image scene boxes (uniform grid, segment aggregation, segmenters) and text scene splitting."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from rsretrieval.config import ImageScenesConfig, RegionCropConfig, TextScenesConfig
from rsretrieval.scenes.boxes import aggregate_boxes, label_boxes, mask_to_box, uniform_grid_boxes
from rsretrieval.scenes.image_scenes import crop_key, image_scene_boxes
from rsretrieval.scenes.segmenters import ClassicalSegmenter, make_segmenter
from rsretrieval.scenes.text_scenes import SentenceSplitter, text_scenes_table
from tests.conftest import DATA


@pytest.mark.parametrize("w,h,grid,overlap", [(256, 256, 3, 0.2), (600, 400, 2, 0.5), (101, 77, 4, 0.0), (64, 64, 1, 0.3)])
def test_uniform_grid_covers_image_with_requested_overlap(w: int, h: int, grid: int, overlap: float) -> None:
    boxes = uniform_grid_boxes(w, h, grid, overlap)
    assert len(boxes) == grid * grid
    cover = np.zeros((h, w), dtype=int)
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        cover[y0:y1, x0:x1] += 1
    assert (cover >= 1).all()
    if grid > 1:
        (ax0, _, ax1, _), (bx0, _, _, _) = boxes[0], boxes[1]
        assert (ax1 - bx0) / (ax1 - ax0) == pytest.approx(overlap, abs=2.5 / (ax1 - ax0))
        sides = {x1 - x0 for x0, _, x1, _ in boxes}
        assert max(sides) - min(sides) <= 2  # equal patches up to rounding


def test_mask_and_label_boxes() -> None:
    m = np.zeros((10, 12), bool)
    m[2:5, 3:9] = True
    assert mask_to_box(m) == (3, 2, 9, 5)
    assert mask_to_box(np.zeros((4, 4), bool)) is None
    lab = np.zeros((6, 6), int)
    lab[0:2, 0:3] = 1
    lab[4:6, 5:6] = 2
    assert label_boxes(lab) == [(0, 0, 6, 6), (0, 0, 3, 2), (5, 4, 6, 6)]


def test_aggregation_clusters_hand_made_masks() -> None:
    """Two groups of small objects far apart become two regions; noise and background go."""
    w = h = 400
    group_a = [(20, 20, 40, 40), (50, 25, 70, 45), (30, 55, 50, 75)]  # top-left tanks
    group_b = [(320, 320, 340, 340), (345, 330, 365, 350)]  # bottom-right cars
    noise = [(200, 10, 201, 11)]  # 1 px: dropped
    background = [(0, 0, 400, 400)]  # full image: the meta-scene covers it
    regions = aggregate_boxes(group_a + group_b + noise + background, w, h, max_regions=9,
                              merge_distance=0.25, min_side_frac=0.0)
    assert sorted(regions) == [(20, 20, 70, 75), (320, 320, 365, 350)]


def test_aggregation_bounds_regions_and_grows_small_ones() -> None:
    rng = np.random.default_rng(0)
    boxes = []
    for _ in range(60):
        x, y = rng.integers(0, 470, 2)
        boxes.append((int(x), int(y), int(x) + 30, int(y) + 30))
    regions = aggregate_boxes(boxes, 500, 500, max_regions=4, merge_distance=0.01, min_side_frac=0.3)
    assert 1 <= len(regions) <= 4
    for x0, y0, x1, y1 in regions:
        assert x1 - x0 >= 149 and y1 - y0 >= 149 and 0 <= x0 and x1 <= 500 and y1 <= 500
    assert aggregate_boxes([], 10, 10) == []


def test_classical_segmenter_finds_objects_on_real_ucm_image() -> None:
    img = Image.open(next((DATA / "ucm").glob("*.tif"))).convert("RGB")
    seg = ClassicalSegmenter(RegionCropConfig())
    boxes = seg.boxes(img)
    assert len(boxes) > 3 and all(0 <= b[0] < b[2] <= img.width and 0 <= b[1] < b[3] <= img.height for b in boxes)
    scenes = image_scene_boxes(img, "regions", ImageScenesConfig(), seg)
    assert scenes[0] == ((0, 0, img.width, img.height), "full")
    assert all(m == "segments" for _, m in scenes[1:]) and 2 <= len(scenes) <= 10


def test_image_scene_sets_are_never_empty() -> None:
    img = Image.new("RGB", (64, 48), "gray")  # nothing to segment
    cfg = ImageScenesConfig(include_full=False)
    assert image_scene_boxes(img, "regions", cfg, make_segmenter(cfg.regions)) == [((0, 0, 64, 48), "full")]
    uni = image_scene_boxes(img, "uniform", ImageScenesConfig())
    assert len(uni) == 10 and uni[0][1] == "full" and {m for _, m in uni[1:]} == {"uniform"}


def test_crop_key_depends_only_on_that_methods_config() -> None:
    a = ImageScenesConfig()
    b = ImageScenesConfig(regions=RegionCropConfig(max_regions=3))
    assert crop_key("uniform", a) == crop_key("uniform", b)
    assert crop_key("regions", a) != crop_key("regions", b)


def test_sam2_random_weights_code_path() -> None:
    """SAM 2 built from its config without a checkpoint (random weights): the path runs, boxes are valid."""
    pytest.importorskip("sam2", reason="sam2 not installed (pip install 'rsretrieval[sam]')")
    cfg = RegionCropConfig(segmenter="sam2", sam2_points_per_side=2, sam2_pred_iou_thresh=0.0,
                           sam2_stability_score_thresh=0.0, sam2_max_side=128)
    seg = make_segmenter(cfg)
    assert seg.method == "sam2"
    img = Image.open(next((DATA / "ucm").glob("*.tif"))).convert("RGB")
    boxes = seg.boxes(img)
    assert all(0 <= b[0] < b[2] <= img.width and 0 <= b[1] < b[3] <= img.height for b in boxes)
    scenes = image_scene_boxes(img, "regions", ImageScenesConfig(regions=cfg), seg)
    assert scenes[0][1] == "full" and all(m == "sam2" for _, m in scenes[1:])


def test_sam2_missing_checkpoint_is_a_clear_error(tmp_path) -> None:
    pytest.importorskip("sam2", reason="sam2 not installed")
    with pytest.raises(FileNotFoundError, match="sam2_checkpoint"):
        make_segmenter(RegionCropConfig(sam2_checkpoint=tmp_path / "nope.pt"))


A14_EXAMPLE = ("The remote sensing image shows an airport tarmac with several aircraft. A large passenger jet is "
               "centrally located, casting a long shadow. Other smaller aircraft are parked nearby, some partially "
               "obscured by the larger jet. The tarmac surface is a light gray color, and there are some indistinct "
               "structures or equipment visible around the aircraft. The image appears to be taken from a high "
               "angle, providing a clear view of the aircraft arrangement on the ground.")


def test_splitter_follows_a14_rules() -> None:
    s = SentenceSplitter()
    assert s.split("several planes are parked on the apron .") == []  # short, no interactions
    scenes = s.split(A14_EXAMPLE)
    assert 2 <= len(scenes) <= 6
    assert scenes[1] == "A large passenger jet is centrally located, casting a long shadow"
    assert " ".join(scenes).split() == A14_EXAMPLE.replace(".", "").split()  # wording preserved, nothing added
    many = ". ".join(f"a red car number {i} is parked next to a white house" for i in range(10)) + "."
    assert len(s.split(many)) == 6
    assert len(SentenceSplitter(TextScenesConfig(max_scenes=3)).split(many)) == 3


def test_text_scenes_table_keeps_full_caption_and_falls_back() -> None:
    cfg = TextScenesConfig()
    t = text_scenes_table(["c1", "c2"], ["short one .", A14_EXAMPLE], [[], ["x y z w", "a b c d"]], "split@v1", cfg)
    rows = t.to_pylist()
    assert [(r["caption_id"], r["scene_idx"], r["source"]) for r in rows] == [
        ("c1", 0, "full"), ("c2", 0, "full"), ("c2", 1, "split@v1"), ("c2", 2, "split@v1")]
    t2 = text_scenes_table(["c1", "c2"], ["short one .", A14_EXAMPLE], [[], ["x y z w"]], "g",
                           TextScenesConfig(include_full=False))
    assert [(r["caption_id"], r["text"]) for r in t2.to_pylist()] == [("c1", "short one ."), ("c2", "x y z w")]
