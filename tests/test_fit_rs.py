"""FIT-RS reader (format fit_rs): caption selection, splits, skipped entries, verify messages, graph hook, one run."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from rsretrieval.config import DatasetConfig, FitRSOptions
from rsretrieval.data.errors import DatasetFormatError, DatasetNotFoundError
from rsretrieval.data.fit_rs import FIT_RS_NOTE, hold_out, add_scene_graphs, read_fit_rs
from rsretrieval.graphs.schema import ImageSceneGraph, Relation, SceneObject

FIX = Path(__file__).parent / "data" / "fit_rs"
TRAIN = FIX / "FIT-RS-train-sample.json"
TEST = FIX / "test_FITRS_image_caption_eval.jsonl"
IMAGES = FIX / "imgv2_split_512_100_vaild"
PATCH0 = "0000__512__0___0.png"  # two caption answers (record 0 and turn 2 of a relation + summary record)
OTHER_TASK_ANSWERS = {"3", "A small white car.", "Parking lot.", "parked beside", "(car, parked beside, car)"}


def _read(**options) -> "RSDataset":  # noqa: F821
    return read_fit_rs(TRAIN, IMAGES, options=FitRSOptions(test_annotations=TEST, **options))


@pytest.fixture(scope="module")
def ds():
    return _read()


def test_counts_per_split_ids_and_uris(ds) -> None:
    images = Counter(ds.images["split"].to_pylist())
    assert images == {"train": 8, "val": 2, "test": 6}  # 10 captioned train patches, floor(0.2 * 10) held out
    assert ds.captions.num_rows == 17 and set(ds.captions["variant"].to_pylist()) == {"original"}
    ids = ds.images["image_id"].to_pylist()
    assert len(set(ids)) == 16 and all(i.startswith("fit_rs:") and i.endswith(".png") for i in ids)
    assert all(os.path.isabs(u) and os.path.isfile(u) for u in ds.images["uri"].to_pylist())
    split = dict(zip(ids, ds.images["split"].to_pylist()))
    assert all(split[i] == s for i, s in zip(ds.captions["image_id"].to_pylist(), ds.captions["split"].to_pylist()))


def test_only_caption_answers_become_captions(ds) -> None:
    texts = ds.captions["text"].to_pylist()
    assert not OTHER_TASK_ANSWERS & set(texts)  # VQA, region caption, classification, relation, scene graph
    of0 = [t for i, t in zip(ds.captions["image_id"].to_pylist(), texts) if i == f"fit_rs:{PATCH0}"]
    assert len(of0) == 2 and of0[1].startswith("A small scene seen from above")
    assert ds.captions["caption_id"].to_pylist()[:2] == [f"fit_rs:{PATCH0}#0", f"fit_rs:{PATCH0}#1"]
    warnings = "\n".join(ds.report.warnings)
    assert FIT_RS_NOTE in warnings and "9 records of other FIT-RS tasks" in warnings
    assert "1 images have more than one caption answer" in warnings


def test_bad_records_are_skipped_named_and_counted(ds) -> None:
    skipped = {(Path(s.source).name, s.entry.split(" (")[0]): s.kind for s in ds.report.skipped}
    assert skipped == {
        (TRAIN.name, "[20]"): "malformed",  # not an object
        (TRAIN.name, "[21]"): "malformed",  # no "image"
        (TRAIN.name, "[22]"): "no_caption",  # caption prompt without a gpt answer
        (TEST.name, "line 7"): "bad_json",
        (TEST.name, "line 8"): "missing_file",
    }
    missing = next(s for s in ds.report.skipped if s.kind == "missing_file")
    assert "0009__512__412___0.png not found" in str(missing) and "id 91" in missing.entry
    assert ds.report.summary()["skipped"] == 5


def test_val_hold_out_is_seeded_and_order_free() -> None:
    names = [f"{i:04d}.png" for i in range(5928)]
    val = hold_out(names, 0.2, 0)
    assert len(val) == 1185  # the thesis' 4,743 / 1,185
    assert hold_out(list(reversed(names)), 0.2, 0) == val and hold_out(names, 0.2, 1) != val
    assert "val" not in set(_read(val_fraction=0).images["split"].to_pylist())


def test_split_file_decides_and_bad_lines_are_skipped(tmp_path: Path, ds) -> None:
    ids = ds.images["image_id"].to_pylist()
    names = [i.split(":", 1)[1] for i in ids]  # 16 patches + 1 whose file is missing: 15 unlisted
    lines = ["image,split", f"{names[0]},test", f"{names[1]} val", f"{names[2]},validation", "# a comment", ""]
    split_file = tmp_path / "thesis_split.csv"
    split_file.write_text("\n".join(lines) + "\n")
    got = _read(split_file=split_file)
    assert dict(zip(got.images["image_id"].to_pylist(), got.images["split"].to_pylist())) == {
        ids[0]: "test", ids[1]: "val"}
    bad = [s for s in got.report.skipped if s.kind == "unknown_split"]
    assert len(bad) == 1 and bad[0].entry == "line 4" and "'validation'" in bad[0].detail
    assert any("15 captioned images not listed left out" in w for w in got.report.warnings)


def test_caption_patterns_are_configurable() -> None:
    with pytest.raises(DatasetFormatError, match="no caption answers found .*caption_patterns"):
        _read(caption_patterns=["no prompt says this"])
    everything = _read(caption_patterns=[".*"], exclude_patterns=[])
    assert OTHER_TASK_ANSWERS <= set(everything.captions["text"].to_pylist())


def test_verify_tells_what_to_download_and_where(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"FIT-RS train annotation file not found .*FIT-RS-train-1415k\.json"):
        read_fit_rs(tmp_path / "nope.json", IMAGES)
    with pytest.raises(DatasetNotFoundError, match=r"test annotation file .*test_FITRS_image_caption_eval\.jsonl"):
        read_fit_rs(TRAIN, IMAGES, options=FitRSOptions(test_annotations=tmp_path / "nope.jsonl"))
    with pytest.raises(DatasetNotFoundError, match=r"FIT-RS image folder not found .*imgv2_split_512_100_vaild"):
        read_fit_rs(TRAIN, tmp_path / "images")
    with pytest.raises(DatasetNotFoundError, match=r"STAR annotation folder .*scene_graphs not found .*object-json"):
        read_fit_rs(TRAIN, IMAGES, options=FitRSOptions(scene_graphs=tmp_path / "star.json"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"all 10 image files .*image_root"):
        read_fit_rs(TRAIN, tmp_path / "empty")
    assert read_fit_rs(TRAIN, tmp_path / "empty", verify_images=False).images.num_rows == 10


def _graph() -> ImageSceneGraph:
    return ImageSceneGraph(
        scene="Parking Lot", object_counts={"car": 3, "building": 1},
        objects=[SceneObject(id=0, name="car", attributes={"count": "3", "color": "white"}),
                 SceneObject(id=1, name="building", attributes={"roof": "flat"})],
        relations=[Relation(subject="car", relation="parked_beside", object="building", subject_id=0, object_id=1)])


def test_graph_hook_fills_the_oracle_image_graphs(ds) -> None:
    from rsretrieval.pipelines.stages.generation_tasks import ground_truth_graphs

    with_graphs = add_scene_graphs(ds, {PATCH0: _graph(), "0042__512__0___0.png": _graph()})
    rows = with_graphs.graphs.to_pylist()
    assert [(r["owner_id"], r["kind"], r["generator"]) for r in rows] == [
        (f"fit_rs:{PATCH0}", "image_graph", "ground_truth")]
    truth = ground_truth_graphs(with_graphs)
    assert list(truth) == [f"fit_rs:{PATCH0}"] and truth[f"fit_rs:{PATCH0}"] == _graph()
    assert any("1 graphs name no image" in w for w in with_graphs.report.warnings)
    split = with_graphs.split(with_graphs.images["split"].to_pylist()[0])
    assert split.graphs is not None


def _star_scene(folder: Path) -> None:
    """A STAR split folder with scene 0000 (1,648 px): objects in the windows of the fixture's patches."""
    import csv
    import json

    shapes = [("ship", 1, (100, 100, 160, 120)), ("ship", 2, (100, 140, 160, 160)), ("dock", 3, (60, 80, 300, 200)),
              ("crane", 4, (495, 90, 555, 110)),  # cut by the first window's right border (x = 512): mostly outside
              ("storage-tank", 5, (900, 300, 940, 340))]  # only in the windows starting at 824 / 412
    (folder / "object-json").mkdir(parents=True)
    (folder / "relationship").mkdir()
    (folder / "object-json" / "0000.json").write_text(json.dumps({
        "imagePath": "0000.png", "imageWidth": 1648, "imageHeight": 512, "imageData": None,
        "shapes": [{"label": lab, "group_id": gid, "shape_type": "polygon",
                    "points": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]} for lab, gid, (x0, y0, x1, y1) in shapes]}))
    with open(folder / "relationship" / "0000.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["subject", "subject_ID", "relationship", "object", "object_ID"])
        w.writerows([["ship", 1, "docked at", "dock", 3], ["crane", 4, "over", "dock", 3]])


def test_star_scene_graphs_become_the_patches_oracle_graphs(tmp_path: Path) -> None:
    """Each patch gets the STAR objects inside its window (name: <scene>__<size>__<left>___<top>) and the
    expert triplets between them; a scene STAR lacks is said in the warnings."""
    from rsretrieval.pipelines.stages.generation_tasks import ground_truth_graphs

    _star_scene(tmp_path / "star" / "train")
    ds = read_fit_rs(TRAIN, IMAGES, options=FitRSOptions(test_annotations=TEST, scene_graphs=tmp_path / "star"))
    truth = ground_truth_graphs(ds)
    first = truth["fit_rs:0000__512__0___0.png"]
    assert first.object_counts == {"ship": 2, "dock": 1}  # the crane lies mostly right of x = 512
    assert ("ship", "docked_at", "dock") in {(r.subject, r.relation, r.object) for r in first.relations}
    assert "crane" not in {r.subject for r in first.relations}
    assert truth["fit_rs:0000__512__824___0.png"].object_counts == {"storage tank": 1}
    assert truth["fit_rs:0000__512__412___0.png"].object_counts == {"crane": 1, "storage tank": 1}
    assert not any(i.startswith("fit_rs:0001") for i in truth)
    assert any("scenes STAR does not have" in w for w in ds.report.warnings)
    with pytest.raises(DatasetNotFoundError, match="object-json"):
        read_fit_rs(TRAIN, IMAGES, options=FitRSOptions(scene_graphs=tmp_path))


def test_format_is_registered(tmp_path: Path) -> None:
    from rsretrieval.data.registry import load_dataset

    cfg = DatasetConfig(name="fitrs", format="fit_rs", annotations=TRAIN, image_root=IMAGES,
                        fit_rs={"test_annotations": str(TEST)})
    got = load_dataset(cfg, tmp_path)
    assert got.name == "fitrs" and got.images.num_rows == 16 and got.images["image_id"][0].as_py().startswith("fitrs:")
    assert DatasetConfig.model_fields["fit_rs"].description


def test_benchmark_runs_v2v_on_the_fixture(ray_local, tmp_path: Path, session_cache: Path) -> None:
    """End to end: the offline backend, V2V on the 6 test patches (rs-tiny from the quick config)."""
    import pandas as pd

    from rsretrieval.config import load_config
    from rsretrieval.pipelines.benchmark.run import run_benchmark
    from tests.conftest import QUICK_CONFIG

    dataset = {"name": "fitrs", "format": "fit_rs", "annotations": str(TRAIN), "image_root": str(IMAGES),
               "fit_rs": {"test_annotations": str(TEST)}}
    cfg = load_config(QUICK_CONFIG, [f"output_dir={tmp_path}", f"cache_dir={session_cache}", "mlflow.enabled=false",
                                     "modes=[v2v]", "variants=[original]", "report.enabled=false",
                                     f"datasets={json.dumps([dataset])}"])
    res = run_benchmark(cfg)
    df = pd.read_csv(res.results_csv)
    row = df[df["mode"].str.lower() == "v2v"].iloc[0]
    assert row["n_images"] == 6 and row["n_queries"] == 6
    assert 0 <= row["R@1"] <= row["R@5"] <= row["R@10"] == 100
    skipped = pd.read_csv(res.run_dir / "skipped-fitrs.csv")
    assert sorted(skipped["kind"]) == ["bad_json", "malformed", "malformed", "missing_file", "no_caption"]
    md = res.results_md.read_text()
    assert "fine-grained in nature" in md and "5 samples/rows left out" in md
    print("\n[fit_rs fixture run] " + df[[c for c in df.columns if c in (
        "dataset", "backbone", "mode", "variant", "n_images", "n_queries", "R@1", "R@5", "R@10", "mR")]].to_string(index=False))
