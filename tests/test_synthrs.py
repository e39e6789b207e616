"""The embedded synthetic dataset ``synthrs``: determinism, schema, captions, small objects, caching."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest
from PIL import Image

from rsretrieval.data.schema import CAPTIONS_SCHEMA, GRAPHS_SCHEMA, IMAGES_SCHEMA, normalise_caption
from rsretrieval.data.synthrs import (
    SCENE_TYPES,
    Region,
    SceneObject2D,
    SceneSpec,
    SynthRSConfig,
    generate_synthrs,
    load_synthrs,
    render_scene,
    sample_scene,
    scene_for,
)
from rsretrieval.data.synthrs_text import (
    KEY_OBJECTS,
    OBJECT_NAMES,
    MANY_TREES,
    MAX_WORDS,
    build_graph,
    fine_grained_caption,
    name_forms,
    number_word,
)
from rsretrieval.graphs.schema import SCENE_NODE_ID, ImageSceneGraph

SMALL = SynthRSConfig(seed=0, n_train=20, n_val=5, n_test=10, workers=1)


@pytest.fixture(scope="module")
def small_ds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("synthrs") / "a"
    return out, generate_synthrs(SMALL, out)


def _pixels(ds: object, split: str | None = None) -> dict[str, np.ndarray]:
    images = ds.images if split is None else ds.split(split).images  # type: ignore[attr-defined]
    return {i: np.asarray(Image.open(u)) for i, u in zip(images["image_id"].to_pylist(), images["uri"].to_pylist())}


def test_determinism_and_independence(small_ds: tuple[Path, object], tmp_path: Path) -> None:
    _, ds = small_ds
    again = generate_synthrs(SMALL, tmp_path / "b")
    assert ds.captions.equals(again.captions) and ds.graphs.equals(again.graphs)  # type: ignore[attr-defined]
    assert ds.images.drop(["uri"]).equals(again.images.drop(["uri"]))  # type: ignore[attr-defined]
    a, b = _pixels(ds), _pixels(again)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    other = generate_synthrs(SMALL.model_copy(update={"seed": 1}), tmp_path / "c")
    c = _pixels(other)
    assert sum(not np.array_equal(a[k], c[k]) for k in a) == len(a)
    assert not ds.captions.equals(other.captions)  # type: ignore[attr-defined]
    # test images depend only on (seed, split, index), not on how many train images there are
    fewer = generate_synthrs(SMALL.model_copy(update={"n_train": 3, "n_val": 0}), tmp_path / "d")
    t1, t2 = _pixels(ds, "test"), _pixels(fewer, "test")
    assert t1.keys() == t2.keys() and all(np.array_equal(t1[k], t2[k]) for k in t1)
    assert ds.split("test").captions.equals(fewer.split("test").captions)  # type: ignore[attr-defined]


def test_schema_and_graphs(small_ds: tuple[Path, object]) -> None:
    out, ds = small_ds
    assert ds.name == "synthrs"  # type: ignore[attr-defined]
    assert ds.images.schema.equals(IMAGES_SCHEMA) and ds.captions.schema.equals(CAPTIONS_SCHEMA)  # type: ignore[attr-defined]
    assert ds.graphs.schema.equals(GRAPHS_SCHEMA)  # type: ignore[attr-defined]
    ids = ds.images["image_id"].to_pylist()  # type: ignore[attr-defined]
    assert len(ids) == 35 and ids[0] == "synthrs:train_00000" and "synthrs:test_00009" in ids
    assert set(ds.images["scene_label"].to_pylist()) <= set(SCENE_TYPES)  # type: ignore[attr-defined]
    assert all(Path(u).is_file() and Path(u).parent == out / "images" for u in ds.images["uri"].to_pylist())  # type: ignore[attr-defined]
    assert Image.open(ds.images["uri"][0].as_py()).size == (256, 256)  # type: ignore[attr-defined]
    per = Counter(zip(ds.captions["image_id"].to_pylist(), ds.captions["variant"].to_pylist()))  # type: ignore[attr-defined]
    assert all(per[(i, "original")] == 5 and per[(i, "fine_grained")] == 1 for i in ids)
    cids = set(ds.captions["caption_id"].to_pylist())  # type: ignore[attr-defined]
    assert {f"{ids[0]}#o{k}" for k in range(5)} | {f"{ids[0]}#f0"} <= cids
    g = ds.graphs  # type: ignore[attr-defined]
    assert g["owner_id"].to_pylist() == ids
    assert set(g["kind"].to_pylist()) == {"image_graph"} and set(g["generator"].to_pylist()) == {"ground_truth"}
    for iid, raw in zip(ids, g["graph"].to_pylist()):
        graph = ImageSceneGraph.model_validate_json(raw)
        split, idx = iid.split(":")[1].split("_")
        spec = scene_for(SMALL, split, int(idx))
        rendered = Counter(o.kind for o in spec.objects)
        for name, count in graph.object_counts.items():
            if count > 0:
                assert rendered[name] == count, (iid, name)
            elif name in rendered:
                assert name == "tree" and rendered[name] > MANY_TREES
        assert set(rendered) <= set(graph.object_counts)
        scene_links = {r.subject_id for r in graph.relations if r.object_id == SCENE_NODE_ID}
        assert scene_links == {o.id for o in graph.objects}  # every node hangs off the scene hyper-node


_FORMS = sorted(((f, k) for k in OBJECT_NAMES for f in name_forms(k)), key=lambda fk: -len(fk[0]))
_NUMS = sorted([number_word(i) for i in range(1, 100)], key=len, reverse=True)
_COUNT = re.compile(  # a number, up to four modifiers (no "and"/"of"/number), a name of an object type
    rf"(?<![\w-])(\d+|{'|'.join(_NUMS)})\s+((?:(?!(?:and|of|{'|'.join(_NUMS)})\b)[a-z][a-z-]*\s+){{0,4}}?)"
    rf"({'|'.join(re.escape(f) for f, _ in _FORMS)})(?![\w-])")
_APPROX = frozenset("than about around roughly nearly over almost approximately".split())


def stated_counts(text: str) -> list[tuple[str, int]]:
    """(object type, count) of every count a caption states exactly ('six small beige oil tanks', '43 vehicles')."""
    kind = {f: k for f, k in _FORMS}
    out = []
    for m in _COUNT.finditer(text.lower()):
        before = text.lower()[:m.start()].split()
        if before and before[-1] in _APPROX:  # "more than forty", "about twenty": not exact
            continue
        out.append((kind[m.group(3)], int(m.group(1)) if m.group(1).isdigit() else _NUMS_VALUE[m.group(1)]))
    return out


_NUMS_VALUE = {number_word(i): i for i in range(1, 100)}


def _scenes(n: int, seed: int = 0) -> list[SceneSpec]:
    cfg = SynthRSConfig(seed=seed)
    return [scene_for(cfg, "train", i) for i in range(n)]


def _captions(specs: list[SceneSpec], seed: int = 0) -> list[str]:
    return [fine_grained_caption(s, build_graph(s), np.random.default_rng([seed, i])) for i, s in enumerate(specs)]


def test_name_forms_are_unambiguous() -> None:
    owners: dict[str, set[str]] = {}
    for k in OBJECT_NAMES:
        for f in name_forms(k):
            owners.setdefault(f, set()).add(k)
    assert all(len(v) == 1 for v in owners.values()), {f: v for f, v in owners.items() if len(v) > 1}
    assert {"ship", "vessel", "boat"} <= name_forms("ship") and {"aircraft", "airliner"} <= name_forms("plane")
    assert stated_counts("Six small beige oil tanks north of 43 vehicles; more than forty cars, about a dozen houses.") \
        == [("storage tank", 6), ("car", 43)]
    assert stated_counts("eight plots (six brown, one green and one yellow) and twenty-one detached houses") \
        == [("field", 8), ("house", 21)]


def test_fine_caption_counts_are_true(small_ds: tuple[Path, object]) -> None:
    """Every count stated exactly is the true count of its object type; most captions state some."""
    _, ds = small_ds
    fine = ds.captions.filter(pc.equal(ds.captions["variant"], "fine_grained"))  # type: ignore[attr-defined]
    pairs = []
    for iid, text in zip(fine["image_id"].to_pylist(), fine["text"].to_pylist()):
        split, idx = iid.split(":")[1].split("_")
        pairs.append((scene_for(SMALL, split, int(idx)), text))
    specs = _scenes(150, seed=3)
    pairs += list(zip(specs, _captions(specs)))
    with_count = 0
    for spec, text in pairs:
        truth = Counter(o.kind for o in spec.objects)
        stated = stated_counts(text)
        assert all(truth[k] == n for k, n in stated), (text, stated, truth)
        with_count += bool(stated)
    assert with_count >= 0.6 * len(pairs)


def test_fine_caption_variety() -> None:
    """Real fine-grained captions vary: openers, number styles, names, sentence structures."""
    caps = _captions(_scenes(100))
    assert len({" ".join(c.split()[:3]) for c in caps}) >= 20  # distinct openers
    digits = [c for c in caps if any(str(n) == w for _, n in stated_counts(c) for w in re.findall(r"\d+", c))]
    words = [c for c in caps if re.search(rf"\b({'|'.join(_NUMS)})\b", c.lower()) and stated_counts(c)]
    assert len(digits) >= 10 and len(words) >= 10
    assert any(re.search(r"about|around|roughly|more than|nearly|dozen", c) for c in caps)  # approximate counts
    assert any(re.search(r"\b(several|a few|a couple of|a pair of|a number of)\b", c) for c in caps)  # vague ones
    sentences = Counter(len(re.findall(r"\.(?:\s|$)", c)) for c in caps)
    assert sentences[1] >= 5 and sum(v for k, v in sentences.items() if k >= 3) >= 20  # one long sentence or 2-4
    used = {f for c in caps for f in name_forms("car") | name_forms("storage tank") | name_forms("plane")
            if re.search(rf"\b{f}\b", c)}
    assert len(used) >= 8  # synonyms, not one name per type


def test_fine_caption_length_determinism_and_salient_object() -> None:
    specs = _scenes(60, seed=1)
    caps = _captions(specs)
    assert caps == _captions(specs)  # deterministic per generator state
    other = _captions(specs, seed=9)
    assert sum(a != b for a, b in zip(caps, other)) >= 0.9 * len(caps)  # ... and the state matters
    for spec, c in zip(specs, caps):
        assert c and c[0].isupper() and c.endswith(".") and 0 < len(c.split()) <= MAX_WORDS, c
        present = [k for k in KEY_OBJECTS[spec.scene_type] if any(o.kind == k for o in spec.objects)]
        if present:  # the most salient object type is always mentioned, by one of its names
            assert any(re.search(rf"\b{re.escape(f)}\b", c.lower()) for f in name_forms(present[0])), (present[0], c)


def _crop(spec: SceneSpec, x0: float, y0: float, w: int) -> SceneSpec:
    """The part of a scene inside a ``w`` px window (objects whose box meets it), in window coordinates."""
    out = SceneSpec(spec.scene_type, w, spec.background, texture_seed=spec.texture_seed)
    out.regions = [Region(r.kind, [(x - x0, y - y0) for x, y in r.points], r.width) for r in spec.regions]
    for o in spec.objects:
        bx0, by0, bx1, by1 = o.bbox()
        if bx1 > x0 and by1 > y0 and bx0 < x0 + w and by0 < y0 + w:
            out.objects.append(replace(o, x=o.x - x0, y=o.y - y0))
    return out


def test_crops_and_empty_scenes_get_short_true_captions() -> None:
    rng = np.random.default_rng(0)
    crops = [SceneSpec(t, 96, bg) for t, bg in (("airport", "grass"), ("port", "sand"), ("forest", "forest"))]
    for spec in _scenes(18, seed=2):
        crops += [_crop(spec, x, y, 96) for x in (0, 80, 160) for y in (0, 160)]
    assert sum(not c.objects for c in crops) >= 3
    for spec in crops:
        c = fine_grained_caption(spec, build_graph(spec), rng)
        assert c and c.endswith(".") and len(c.split()) <= MAX_WORDS, c
        truth = Counter(o.kind for o in spec.objects)
        assert all(truth[k] == n for k, n in stated_counts(c)), (c, truth)
        if not spec.objects:
            assert re.search(r"grass|lawn|sand|soil|bare|barren|forest|woodland", c), c


def test_generic_captions_ambiguous_fine_distinct(small_ds: tuple[Path, object]) -> None:
    _, ds = small_ds
    caps = ds.captions  # type: ignore[attr-defined]
    orig = [normalise_caption(t) for t, v in zip(caps["text"].to_pylist(), caps["variant"].to_pylist()) if v == "original"]
    fine = [normalise_caption(t) for t, v in zip(caps["text"].to_pylist(), caps["variant"].to_pylist()) if v == "fine_grained"]
    assert len(set(orig)) < 0.6 * len(orig)
    assert len(set(fine)) >= 0.95 * len(fine)


def _cars_only(color: str = "white") -> SceneSpec:
    spec = SceneSpec("parking", 256, "grass")
    for i, (x, y) in enumerate([(96, 96), (117, 99), (139, 95), (101, 121), (123, 124), (142, 141)]):
        spec.objects.append(SceneObject2D("car", x, y, 3, 6, 90.0 * (i % 2), color, "small"))
    return spec


def test_small_objects_vanish_at_64px_and_come_back_in_crops() -> None:
    spec = _cars_only()
    empty = SceneSpec("parking", 256, "grass")
    img, bg = render_scene(spec), render_scene(empty)  # same texture seed: the difference is the cars only
    assert (np.abs(img.astype(int) - bg.astype(int)).max(-1) > 60).sum() >= 6 * 15  # drawn at full resolution

    def dev(a: np.ndarray, b: np.ndarray, box: tuple[int, int, int, int] | None) -> np.ndarray:
        ims = [Image.fromarray(x).crop(box) if box else Image.fromarray(x) for x in (a, b)]
        small = [np.asarray(i.resize((64, 64), Image.BICUBIC), dtype=int) for i in ims]
        return np.abs(small[0] - small[1]).max(-1)

    strong = 0.75 * float(np.abs(np.array([236, 236, 230]) - np.array([96, 132, 66])).max())  # 3/4 of car contrast
    full = dev(img, bg, None)
    crop = dev(img, bg, (68, 68, 168, 168))  # one ~100 px cell of a 3x3 grid with overlap
    assert (full > strong).sum() == 0, full.max()  # whole image at 64 px: each car is at most a faint blur
    assert (full > 30).sum() <= 6 * 4  # ... of a few pixels, shape and colour lost
    assert (crop > strong).sum() >= 6 * 3  # crop at 64 px: every car keeps several full-contrast pixels


def test_hand_made_and_sampled_scenes_render() -> None:
    for t in SCENE_TYPES:
        spec = sample_scene(np.random.default_rng(3), t)
        img = render_scene(spec)
        assert img.shape == (256, 256, 3) and img.dtype == np.uint8 and spec.scene_type == t
        assert np.array_equal(img, render_scene(spec))
    with pytest.raises(ValueError):
        sample_scene(np.random.default_rng(0), "moon base")


def test_idempotent_and_manifest(tmp_path: Path) -> None:
    cfg = SynthRSConfig(n_train=4, n_val=1, n_test=2, workers=1)
    out = tmp_path / "ds"
    first = generate_synthrs(cfg, out)
    files = sorted((out / "images").glob("*.png")) + [out / f"{t}.parquet" for t in ("images", "captions", "graphs")]
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    second = generate_synthrs(cfg, out)
    assert {p: p.stat().st_mtime_ns for p in files} == mtimes  # loaded, not re-rendered
    assert second.fingerprint() == first.fingerprint() and second.graphs.equals(first.graphs)  # type: ignore[union-attr]
    assert load_synthrs(out).fingerprint() == first.fingerprint()
    (out / "manifest.json").unlink()  # as after an interrupted run
    third = generate_synthrs(cfg, out)
    assert (out / "manifest.json").is_file() and third.fingerprint() == first.fingerprint()
    assert any(p.stat().st_mtime_ns != mtimes[p] for p in files)
    other = generate_synthrs(cfg.model_copy(update={"seed": 5}), out)  # a different config regenerates too
    assert other.fingerprint() != first.fingerprint()
