"""Human-evaluation kit: 7 questions of 7 distinct scenes, each 1 gold + 8 same-scene distractors; fewer
scenes an error or the documented fallback; scoring matches a hand count."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from PIL import Image

from tests.conftest import looks_rendered, needs_chromium, screenshot
from rsretrieval.analysis.human_eval import build_questions, score_answers, write_form
from rsretrieval.data.schema import RSDataset


@pytest.fixture()
def ds(tmp_path: Path) -> RSDataset:
    images, caps = [], []
    for i in range(24):
        uri = tmp_path / f"{i}.png"
        Image.new("RGB", (32, 32), (i * 10, 0, 0)).save(uri)
        images.append({"image_id": f"d:{i}", "dataset": "d", "split": "test", "uri": str(uri),
                       "scene_label": "port" if i < 12 else "farm"})
        caps += [{"caption_id": f"d:{i}:o", "image_id": f"d:{i}", "text": f"a scene {i}", "variant": "original", "split": "test"},
                 {"caption_id": f"d:{i}:f", "image_id": f"d:{i}", "text": f"four <red> ships {i}", "variant": "fine_grained",
                  "split": "test"}]
    return RSDataset("d", pa.Table.from_pylist(images), pa.Table.from_pylist(caps), None, None)


def test_questions_and_forms(ds: RSDataset, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"d: 2 scene labels .*\(farm, port\), fewer than the 4 distinct"):
        build_questions(ds, n_questions=4, seed=1)  # 2 scenes cannot give 4 distinct ones
    qs = build_questions(ds, n_questions=4, seed=1, on_few_scenes="repeat")
    assert len(qs) == 8 and {q.variant for q in qs} == {"original", "fine_grained"}
    labels = dict(zip(ds.images["image_id"].to_pylist(), ds.images["scene_label"].to_pylist()))
    for q in qs:
        assert len(q.image_ids) == 9 == len(set(q.image_ids)) and q.gold_image_id in q.image_ids
        assert {labels[i] for i in q.image_ids} == {labels[q.gold_image_id]}  # same-scene distractors
    pairs = {}
    for q in qs:  # both variants ask about the same images, in the same order
        pairs.setdefault(q.qid.split("-")[1], []).append((q.gold_image_id, tuple(q.image_ids)))
    assert all(len(set(v)) == 1 for v in pairs.values())
    paths = write_form(ds, qs, tmp_path / "form")
    page = (tmp_path / "form" / "form_fine_grained.html").read_text()
    assert "more than one question" in page  # the fallback is said on the form
    assert sorted(q.scene for q in qs if q.variant == "original") == ["farm", "farm", "port", "port"]  # each once, then again
    assert page.count('type="radio"') == 4 * 9 and "four &lt;red&gt; ships" in page and "data:image/jpeg;base64," in page
    assert json.loads(paths[-1].read_text())["questions"][0]["gold_image_id"] == qs[0].gold_image_id


def test_scoring_matches_a_hand_count(ds: RSDataset, tmp_path: Path) -> None:
    qs = build_questions(ds, n_questions=2, seed=3)
    key = write_form(ds, qs, tmp_path)[-1]
    gold = {q.qid: q.image_ids.index(q.gold_image_id) + 1 for q in qs}
    wrong = {q: (g % 9) + 1 for q, g in gold.items()}
    rows = []
    for who, picks in (("a", gold), ("b", gold), ("c", wrong)):
        rows += [{"participant": who, "question_id": q, "choice": c} for q, c in picks.items()]
    rows[0]["choice"] = wrong[rows[0]["question_id"]]  # a misses original-1
    t = score_answers(pd.DataFrame(rows), key).set_index("variant")
    # original-1: 1/3 correct, 2 distinct picks; original-2: 2/3, 2 -> mean 50.0, median 50.0, unique 2
    assert t.loc["original", "Mean Correct (%)"] == pytest.approx(50.0)
    assert t.loc["fine_grained", "Mean Correct (%)"] == pytest.approx(200 / 3)
    assert t.loc["original", "Mean Unique Choices"] == 2 and t.loc["original", "answers"] == 6
    with pytest.raises(ValueError, match="not in"):
        score_answers(pd.DataFrame([{"participant": "x", "question_id": "nope-1", "choice": 1}]), key)


@needs_chromium
def test_forms_render_in_headless_chromium(ds: RSDataset, tmp_path: Path) -> None:
    paths = write_form(ds, build_questions(ds, n_questions=2, seed=1), tmp_path / "form")
    for form in [p for p in paths if p.suffix == ".html"]:
        assert looks_rendered(screenshot(form, tmp_path / f"{form.stem}.png", height=1600))


def _scenes_dataset(tmp_path: Path, n_scenes: int, per_scene: int = 9, labelled: bool = True) -> RSDataset:
    images, caps = [], []
    Image.new("RGB", (8, 8), (0, 90, 0)).save(tmp_path / "x.png")
    for s in range(n_scenes):
        for j in range(per_scene):
            iid = f"e:{s}:{j}"
            images.append({"image_id": iid, "dataset": "e", "split": "test", "uri": str(tmp_path / "x.png"),
                           "scene_label": f"scene{s}" if labelled else None})
            caps += [{"caption_id": f"{iid}:o", "image_id": iid, "text": "generic", "variant": "original", "split": "test"},
                     {"caption_id": f"{iid}:f", "image_id": iid, "text": f"fine {iid}", "variant": "fine_grained",
                      "split": "test"}]
    return RSDataset("e", pa.Table.from_pylist(images), pa.Table.from_pylist(caps), None, None)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_seven_questions_draw_seven_different_scene_categories(tmp_path: Path, seed: int) -> None:
    ds = _scenes_dataset(tmp_path, n_scenes=10)
    qs = build_questions(ds, seed=seed)  # the defaults: 7 questions, 9 choices
    for variant in ("original", "fine_grained"):
        vq = [q for q in qs if q.variant == variant]
        assert len(vq) == 7 and len({q.scene for q in vq}) == 7  # 7 different categories
        assert all(q.gold_image_id.split(":")[1] == q.scene[5:] for q in vq)  # the gold is of its category
        assert all({i.split(":")[1] for i in q.image_ids} == {q.scene[5:]} for q in vq)  # 8 same-scene distractors
    draws = {tuple(sorted(q.scene for q in qs if q.variant == "original")) for s in range(6)
             for qs in [build_questions(ds, seed=s)]}
    assert len(draws) > 1  # the categories are drawn at random, not always the first 7


def test_fewer_than_seven_scenes_error_or_documented_fallback(tmp_path: Path) -> None:
    ds = _scenes_dataset(tmp_path, n_scenes=7, per_scene=8)  # 8 images: a category cannot fill 9 choices
    with pytest.raises(ValueError, match="e: 0 scene labels with >= 9 images"):
        build_questions(ds)
    ds = _scenes_dataset(tmp_path, n_scenes=5)
    with pytest.raises(ValueError, match="fewer than the 7 distinct scene categories"):
        build_questions(ds)
    qs = [q for q in build_questions(ds, on_few_scenes="repeat") if q.variant == "original"]
    assert len(qs) == 7 and len({q.scene for q in qs}) == 5 and len({q.gold_image_id for q in qs}) == 7
    assert all(q.distractors == "same scene" for q in qs)
    qs = build_questions(_scenes_dataset(tmp_path, n_scenes=2, labelled=False), on_few_scenes="repeat")
    assert len(qs) == 14 and {q.distractors for q in qs} == {"random"} and {q.scene for q in qs} == {None}
    with pytest.raises(ValueError, match="on_few_scenes must be one of"):
        build_questions(ds, on_few_scenes="ignore")
