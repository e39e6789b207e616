"""Image graphs from boxes: the builder, the box-file readers (fixtures in tests/data/boxes, PROVENANCE.md),
the simulated detector on synthrs and the 'boxes' source in a quick benchmark run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from rsretrieval.config import SimulatedDetectorConfig, load_config
from rsretrieval.data.boxes import BoxFilter, read_coco, read_det_json, read_dior, read_dota
from rsretrieval.data.star import star_scene_graphs
from rsretrieval.graphs.from_boxes import UNKNOWN_SCENE, Box, graph_from_boxes, size_class
from rsretrieval.graphs.schema import SCENE_NODE_ID
from tests.conftest import QUICK_CONFIG

DATA = Path(__file__).parent / "data" / "boxes"


def _rels(g) -> set[tuple[str, str, str]]:
    return {(r.subject, r.relation, r.object) for r in g.relations if r.object_id != SCENE_NODE_ID}


def test_builder_counts_sizes_positions_and_scene() -> None:
    boxes = [Box.xyxy("car", 10, 10, 13, 16), Box.xyxy("car", 20, 10, 23, 16), Box.xyxy("storage tank", 200, 200, 222, 222)]
    g = graph_from_boxes(boxes, 256, 256, "Parking Lot")
    assert g.object_counts == {"car": 2, "storage tank": 1}
    car, tank = g.objects
    assert car.attributes == {"size": "small", "count": "2", "position": "north-west"}
    assert tank.attributes["size"] == "large" and tank.attributes["position"] == "south-east"
    assert {(r.subject, r.relation, r.object_id) for r in g.relations if r.object_id == SCENE_NODE_ID} == {
        ("car", "inside", SCENE_NODE_ID), ("storage tank", "inside", SCENE_NODE_ID)}
    assert g.scene == "Parking Lot" and graph_from_boxes(boxes, 256, 256).scene == UNKNOWN_SCENE
    assert size_class(14 * 14, 256 * 256) == "medium"  # synthrs' medium tank


def test_builder_spatial_relations() -> None:
    lot = Box.xyxy("parking lot", 0, 0, 100, 100)
    cars = [Box.xyxy("car", 10, 10, 13, 16), Box.xyxy("car", 50, 50, 53, 56)]
    house = Box.xyxy("house", 103, 20, 113, 30)  # 3 px right of the lot
    tree = Box.xyxy("tree", 20, 200, 26, 206)  # far south of everything
    g = graph_from_boxes([lot, *cars, house, tree], 256, 256)
    rels = _rels(g)
    assert ("car", "on", "parking lot") in rels
    assert ("parking lot", "adjacent_to", "house") in rels or ("house", "adjacent_to", "parking lot") in rels
    assert ("tree", "south_of", "parking lot") in rels or ("parking lot", "north_of", "tree") in rels
    assert not any(r[1] == "on" and r[0] == "parking lot" for r in rels)  # the larger area is not on the cars
    assert len({frozenset((r.subject_id, r.object_id)) for r in g.relations}) == len(g.relations)  # one per pair
    assert _rels(graph_from_boxes([lot, *cars], 256, 256, spatial=False)) == set()


def test_builder_given_relations_and_rotated_area() -> None:
    a, b = Box.rotated("ship", 50, 50, 20, 10, 0.7, key="1"), Box.xyxy("dock", 60, 40, 70, 90, key="2")
    assert a.area == pytest.approx(200)  # a rotated box keeps its own area, not its bounds'
    g = graph_from_boxes([a, b], 256, 256, relations=[(0, "docked_at", 1)], spatial=True)
    assert _rels(g) == {("ship", "docked_at", "dock")}  # given relation; no geometric one for the same pair
    with pytest.raises(ValueError, match="image size"):
        graph_from_boxes([a], 0, 256)


def test_dota_labels_and_task1_results() -> None:
    r = read_dota(DATA / "dota", BoxFilter(image_sizes={"P0001": (4000, 4000)}))
    assert [b.category for b in r.images["P0001"].boxes] == ["plane", "plane", "storage tank"]
    msgs = {s.kind: str(s) for s in r.skipped}
    assert "P0001.txt, line 6" in msgs["malformed"] and "x1 y1 x2 y2" in msgs["malformed"]
    assert "P0001.txt, line 7" in msgs["outside_image"] and "4000 x 4000" in msgs["outside_image"]
    assert "P0002.txt" in msgs["empty"] and "P0002" not in r.images
    t = read_dota(DATA / "dota_task1", BoxFilter(min_score=0.3))
    assert len(t.images["P0001"].boxes) == 2 and t.dropped_low_score == 1
    assert t.images["P0001"].boxes[0].score == pytest.approx(0.968)
    only = read_dota(DATA / "dota", BoxFilter(categories=["plane"]))
    assert any(s.kind == "unknown_category" and "storage-tank" in s.detail for s in only.skipped)


def test_dior_xml_horizontal_and_oriented() -> None:
    r = read_dior(DATA / "dior")
    assert r.images["00001"].width == 800 and [b.category for b in r.images["00001"].boxes] == ["golffield", "vehicle"]
    assert r.images["00002"].boxes[0].bounds == (100, 100, 180, 180)  # DIOR-R robndbox corners
    assert [(s.kind, s.entry) for s in r.skipped] == [("outside_image", "object 2")] and "00001.xml" in r.skipped[0].source


def test_coco_json() -> None:
    r = read_coco(DATA / "coco" / "instances.json", BoxFilter(category_map={"small-vehicle": "car"}))
    assert [b.category for b in r.images["P0001"].boxes] == ["car", "car", "parking lot"]
    kinds = {s.entry: s.kind for s in r.skipped}
    assert kinds == {"annotation 3 (id 14)": "unknown_category", "annotation 4 (id 15)": "malformed"}
    im = r.images["P0001"]
    assert ("car", "on", "parking lot") in _rels(graph_from_boxes(im.boxes, im.width, im.height))


def test_det_json() -> None:
    r = read_det_json(DATA / "det_json", BoxFilter(min_score=0.5))
    boxes = r.images["airport_1"].boxes
    assert [b.category for b in boxes] == ["airplane", "airplane"] and r.dropped_low_score == 1
    assert boxes[1].area == pytest.approx(2000)  # rbox (cx, cy, w, h, angle)
    assert {(Path(s.source).name, s.entry, s.kind) for s in r.skipped} == {
        ("airport_1.json", "detection 3", "malformed"), ("airport_2.json", "file", "empty")}


def test_star_scene_graphs() -> None:
    graphs, skipped = star_scene_graphs(DATA / "star", "train")
    g = graphs["P0001__1024__0___0.png"]
    assert g.object_counts == {"ship": 2, "dock": 1}
    assert _rels(g) == {("ship", "parallelly_docked_at", "dock")}  # ship-ship has no edge between types
    where = {(Path(s.source).name, s.entry, s.kind) for s in skipped}
    assert ("P0001__1024__0___0.json", "shape 3", "outside_image") in where  # crane beyond the 1024 px image
    assert ("P0001__1024__0___0.csv", "line 5", "unknown_object") in where  # its relation goes with it
    with pytest.raises(Exception, match="object-json"):
        star_scene_graphs(DATA / "star", "test")


def test_simulated_detector_is_seeded_and_drops_objects() -> None:
    from rsretrieval.data.synthrs import SynthRSConfig, scene_for
    from rsretrieval.generation.simulated_detector import simulate_detections

    spec = scene_for(SynthRSConfig(), "test", 4)  # a parking scene: many small cars
    cfg = SimulatedDetectorConfig()
    a, b = simulate_detections(spec, "x", cfg, 0), simulate_detections(spec, "x", cfg, 0)
    assert a == b and a != simulate_detections(spec, "x", cfg, 1)
    perfect = SimulatedDetectorConfig(recall=1, small_recall=1, jitter=0, confusion=0, false_positives=0)
    exact = simulate_detections(spec, "x", perfect)
    assert len(exact) == len(spec.objects) and [x.category for x in exact] == [o.kind for o in spec.objects]
    lossy = SimulatedDetectorConfig(recall=0.5, small_recall=0.5, false_positives=0)
    assert len(simulate_detections(spec, "x", lossy)) < len(spec.objects)


def test_boxes_source_in_a_quick_benchmark(tmp_path: Path, session_cache: Path, ray_local) -> None:
    from rsretrieval.pipelines.benchmark.run import run_benchmark

    cfg = load_config(QUICK_CONFIG, [f"output_dir={tmp_path}", f"cache_dir={session_cache}", "modes=[g2g]",
                                     "graph_matching.image_graphs=[generated, oracle, boxes]",
                                     "graph_matching.train.enabled=false", "backbones=[]"])  # G2G needs no backbone
    res = run_benchmark(cfg)
    df = pd.read_csv(res.results_csv)
    g = df[df["mode"] == "g2g"]
    assert set(g["graphs"]) == {"simulated-vlm", "oracle", "boxes-noisy-gt-simulated"}
    boxes = g[g["graphs"] == "boxes-noisy-gt-simulated"]
    assert len(boxes) == 2 and boxes["notes"].str.contains("simulated image graphs").all()
    assert (boxes["mR"] > 100 * (1 + 5 + 10) / 3 / 48).all()  # box graphs carry information: above chance
    stats = pd.read_csv(res.run_dir / "graph_stats.csv")
    assert "image:boxes-noisy-gt-simulated" in set(stats["graphs"])


def test_box_entries_left_out_are_listed_in_the_run_folder(tmp_path: Path) -> None:
    """Bad entries of a box file cost only themselves: the good boxes make graphs, and every bad one is a row
    of skipped-boxes-<dataset>.csv (file, entry, reason) in the run folder, as the readers' skipped rows."""
    import pyarrow as pa

    from rsretrieval.pipelines.benchmark.box_graphs import box_graphs

    cfg = load_config(None, [f"output_dir={tmp_path}", "run_name=r"])
    cfg = cfg.model_copy(update={"datasets": [cfg.datasets[0].model_copy(update={
        "name": "dior-set", "boxes": cfg.datasets[0].boxes.model_copy(update={"format": "dior", "path": DATA / "dior"})})]})
    cfg.run_dir.mkdir(parents=True)
    images = pa.table({"image_id": ["a", "b"], "scene_label": ["golf course", None], "uri": ["00001.jpg", "00002.jpg"]})
    label, graphs, notes = box_graphs(cfg, type("DS", (), {"name": "dior-set", "images": images})())
    assert label == "boxes-dior" and set(graphs) == {"a", "b"}
    assert graphs["a"].object_counts == {"golffield": 1, "vehicle": 1}  # the bad object 2 is out, the rest kept
    rows = pd.read_csv(cfg.run_dir / "skipped-boxes-dior-set.csv")
    assert rows[["entry", "kind"]].values.tolist() == [["object 2", "outside_image"]]
    assert rows["source"].str.endswith("00001.xml").all()
    assert any("skipped-boxes-dior-set.csv" in n for n in notes)
