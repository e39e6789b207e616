"""Text-graph parsing metrics (rsretrieval.evaluation.graph_parsing) and the hand-written UCM gold graphs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from rsretrieval.evaluation.graph_parsing import (CATEGORIES, Counts, compare_graphs, evaluate_parser, graph_items,
                                                  load_gold, micro_average, normalise_name, normalise_relation)
from rsretrieval.graphs.schema import TextGraph
from rsretrieval.generation.text_graph_parser import HeuristicTextGraphParser

UCM = Path(__file__).resolve().parent / "data" / "ucm"
GOLD = UCM / "gold_text_graphs.jsonl"
SHARED_UCM = Path("/work/shared/data/ucm_sample/dataset.json")
ATTR_TYPES = {"count", "color", "size", "shape", "arrangement", "position", "orientation"}
CLASSES = ("agricultural airplane baseballdiamond beach buildings chaparral denseresidential forest freeway "
           "golfcourse harbor intersection mediumresidential mobilehomepark overpass parkinglot river runway "
           "sparseresidential storagetanks tenniscourt").split()


def graph(objects: list[str], attrs: list[tuple[str, str, str]] = (), rels: list[tuple[str, str, str]] = ()
          ) -> TextGraph:
    """TextGraph from object names, (object, type, value) and (subject, relation, object) triples."""
    values = list(dict.fromkeys(v for _, _, v in attrs))
    return TextGraph.model_validate({
        "nodes": [{"name": o, "type": "object"} for o in objects] + [{"name": v, "type": "attribute"} for v in values],
        "edges": [{"subject": s, "relation": r, "object": o} for s, r, o in [*attrs, *rels]]})


TANK_ATTRS = [("storage tank", "count", "2"), ("storage tank", "size", "small")]
GOLD_TANKS = graph(["storage tank", "ground", "road"], TANK_ATTRS,
                   [("storage tank", "on", "ground"), ("road", "beside", "storage tank")])


# --- normalisation ------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, norm", [("The Storage Tanks", "storage tank"), ("cars", "car"), ("people", "person"),
                                       ("bushes", "bush"), ("factories", "factory"), ("grass", "grass"),
                                       ("two", "2"), ("11", "11"), ("grey", "gray"), ("blue-grey", "blue-gray"),
                                       ("  Dark   Green ", "dark green"), ("a few", "few"), ("bus", "bus")])
def test_normalise_name(raw: str, norm: str) -> None:
    assert normalise_name(raw) == norm


def test_normalise_relation_drops_articles_but_not_verb_endings() -> None:
    assert normalise_relation("On  the Other Side") == "on other side"
    assert normalise_relation("goes through") == "goes through"  # not singularised to "goe through"


def test_normalisation_makes_surface_variants_match() -> None:
    pred = graph(["The Storage Tanks", "grounds", "road"], [("The Storage Tanks", "count", "two"),
                                                            ("The Storage Tanks", "Size", "Small")],
                 [("The Storage Tanks", "on the", "grounds"), ("road", "Beside", "The Storage Tanks")])
    counts = compare_graphs(pred, GOLD_TANKS)
    assert all(k.fp == 0 and k.fn == 0 for k in counts.values()), counts


# --- the metric on tiny hand-made cases -----------------------------------------------------------

def test_identical_graphs_score_100() -> None:
    counts = compare_graphs(GOLD_TANKS, GOLD_TANKS)
    assert counts["objects"] == Counts(3, 0, 0) and counts["attributes"] == Counts(2, 0, 0)
    assert counts["relations"] == Counts(2, 0, 0) and counts["relations_lenient"] == Counts(2, 0, 0)
    assert all(counts[c].precision == counts[c].recall == counts[c].f1 == 100.0 for c in CATEGORIES)


def test_missing_edge_lowers_recall_not_precision() -> None:
    pred = graph(["storage tank", "ground", "road"], TANK_ATTRS,
                 [("storage tank", "on", "ground")])  # "road beside storage tank" dropped
    rel = compare_graphs(pred, GOLD_TANKS)["relations"]
    assert rel == Counts(tp=1, fp=0, fn=1)
    assert rel.precision == 100.0 and rel.recall == 50.0 and rel.f1 == pytest.approx(200 / 3)


def test_extra_node_lowers_precision_not_recall() -> None:
    pred = graph(["storage tank", "ground", "road", "car"], [("storage tank", "count", "2"),
                                                             ("storage tank", "size", "small")],
                 [("storage tank", "on", "ground"), ("road", "beside", "storage tank")])
    obj = compare_graphs(pred, GOLD_TANKS)["objects"]
    assert obj == Counts(tp=3, fp=1, fn=0) and obj.precision == 75.0 and obj.recall == 100.0


def test_relation_wording_strict_miss_lenient_hit() -> None:
    pred = graph(["storage tank", "ground", "road"], TANK_ATTRS,
                 [("storage tank", "lying on", "ground"), ("road", "beside", "storage tank")])
    counts = compare_graphs(pred, GOLD_TANKS)
    assert counts["relations"] == Counts(1, 1, 1)
    assert counts["relations_lenient"] == Counts(2, 0, 0)


def test_reversed_relation_is_wrong_even_leniently() -> None:
    pred = graph(["storage tank", "ground", "road"], [], [("ground", "on", "storage tank")])
    assert compare_graphs(pred, GOLD_TANKS)["relations_lenient"] == Counts(0, 1, 2)


def test_attribute_type_and_value_both_count() -> None:
    pred = graph(["storage tank", "ground", "road"], [("storage tank", "count", "3"),  # wrong value
                                                      ("storage tank", "arrangement", "small")])  # wrong type
    counts = compare_graphs(pred, GOLD_TANKS)
    assert counts["attributes"] == Counts(0, 2, 2)
    assert counts["attributes_lenient"] == Counts(1, 1, 1)  # ("storage tank", "small") matches without the type
    assert graph_items(pred)["relations"] == set()


def test_swapping_prediction_and_gold_swaps_precision_and_recall() -> None:
    pred = graph(["storage tank", "car"], [("car", "count", "some")], [("car", "beside", "storage tank")])
    a, b = compare_graphs(pred, GOLD_TANKS), compare_graphs(GOLD_TANKS, pred)
    for c in CATEGORIES:
        assert (a[c].tp, a[c].fp, a[c].fn) == (b[c].tp, b[c].fn, b[c].fp)


def test_nothing_to_score_is_nan_not_a_free_100() -> None:
    empty = graph(["farmland"])
    rel = compare_graphs(empty, empty)["relations"]
    assert rel == Counts() and math.isnan(rel.precision) and math.isnan(rel.recall) and math.isnan(rel.f1)
    missed = compare_graphs(graph(["farmland"]), GOLD_TANKS)["relations"]
    assert math.isnan(missed.precision) and missed.recall == 0.0 and missed.f1 == 0.0


def test_micro_average_sums_counts_before_dividing() -> None:
    small = {c: Counts() for c in CATEGORIES} | {"objects": Counts(tp=1, fp=0, fn=0)}  # caption 1: 1/1 right
    big = {c: Counts() for c in CATEGORIES} | {"objects": Counts(tp=1, fp=0, fn=9)}  # caption 2: 1/10 found
    total = micro_average([small, big])["objects"]
    assert total == Counts(2, 0, 9)
    assert total.recall == pytest.approx(200 / 11)  # micro; the macro mean of recalls would be 55
    assert micro_average([]) == {c: Counts() for c in CATEGORIES}


# --- the gold file ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gold_lines() -> list[dict]:
    return [json.loads(line) for line in GOLD.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_gold_file_is_valid(gold_lines: list[dict]) -> None:
    records = load_gold(GOLD)  # raises (naming the line) if a graph breaks the TextGraph schema
    assert len(records) == len(gold_lines) >= 60
    assert len({r.text for r in records}) == len(records), "each caption text once"
    assert len({(r.image, r.sentid) for r in records}) == len(records)
    assert len({r.label for r in records}) == 21, "every UC Merced class"
    for rec, r in zip(gold_lines, records):
        n = int(r.image.removesuffix(".tif"))
        assert rec["class"] == CLASSES[(n - 1) // 100], r.image
        kinds = {node.name: node.type for node in r.graph.nodes}
        assert len(kinds) == len(r.graph.nodes), f"duplicate node name in {r.text!r}"
        assert any(t == "object" for t in kinds.values()), r.text
        for e in r.graph.edges:
            assert e.subject in kinds and e.object in kinds, (r.text, e)
            assert kinds[e.subject] == "object", (r.text, e)
            if kinds[e.object] == "attribute":
                assert e.relation in ATTR_TYPES, (r.text, e)
            else:
                assert e.relation not in ATTR_TYPES and e.relation == e.relation.lower(), (r.text, e)
        for name, kind in kinds.items():  # written in normal form: what normalisation would leave alone
            assert name == name.lower().strip() and "grey" not in name, name
            if kind == "object":
                assert normalise_name(name) == name, name


def _raw_captions(path: Path) -> dict[tuple[str, int], str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return {(im["filename"], s["sentid"]): s["raw"] for im in data["images"] for s in im["sentences"]}


def test_gold_texts_are_the_fixture_captions_verbatim() -> None:
    """The 21 test images are committed with their captions: those gold lines are checked on every machine."""
    raw = _raw_captions(UCM / "dataset.json")
    checked = [r for r in load_gold(GOLD) if (r.image, r.sentid) in raw]
    assert len(checked) >= 21
    for r in checked:
        assert r.text == raw[(r.image, r.sentid)], (r.image, r.sentid)


def test_gold_texts_are_the_shared_sample_captions_verbatim(gold_lines: list[dict]) -> None:
    if not SHARED_UCM.is_file():
        pytest.skip(f"{SHARED_UCM} not on this machine: only the 21-image fixture captions were checked "
                    "(test_gold_texts_are_the_fixture_captions_verbatim)")
    data = json.loads(SHARED_UCM.read_text(encoding="utf-8"))
    raw = _raw_captions(SHARED_UCM)
    split = {im["filename"]: im["split"] for im in data["images"]}
    for rec in gold_lines:
        assert (rec["image"], rec["sentid"]) in raw, rec["text"]
        assert rec["text"] == raw[(rec["image"], rec["sentid"])], (rec["image"], rec["sentid"])
        assert rec["split"] == split[rec["image"]]


# --- the parser over the gold set ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def parser_result():
    return evaluate_parser(HeuristicTextGraphParser().parse, GOLD)


def test_parser_evaluation_tables_agree_with_the_metric(parser_result) -> None:
    gold = load_gold(GOLD)
    parser = HeuristicTextGraphParser()
    expected = micro_average(compare_graphs(parser.parse(r.text), r.graph) for r in gold)
    per, overall = parser_result.per_caption, parser_result.overall
    assert len(per) == len(gold) and list(per["sentid"]) == [r.sentid for r in gold]
    assert list(overall["category"]) == list(CATEGORIES)
    for row in overall.itertuples():
        k = expected[row.category]
        assert (row.tp, row.fp, row.fn) == (k.tp, k.fp, k.fn)
        assert (per[f"{row.category}_tp"].sum(), per[f"{row.category}_fp"].sum(),
                per[f"{row.category}_fn"].sum()) == (k.tp, k.fp, k.fn)  # overall is the sum of the rows
        assert row.precision == pytest.approx(k.precision) and row.recall == pytest.approx(k.recall)
        assert row.f1 == pytest.approx(k.f1)
        for v in (row.precision, row.recall, row.f1):
            assert 0.0 <= v <= 100.0
    objects = overall.set_index("category").loc["objects"]
    assert objects.recall > 0
    lenient, strict = (overall.set_index("category").loc[c] for c in ("relations_lenient", "relations"))
    assert lenient.fn <= strict.fn  # a label-free match can only find more (pairs can merge, so not tp >=)


def test_eval_parser_command_writes_the_tables(tmp_path: Path, parser_result, capsys) -> None:
    from rayjobs.eval_parser import main

    out, per = tmp_path / "overall.csv", tmp_path / "sub" / "captions.csv"
    result = main(["--out", str(out), "--per-caption", str(per)])
    printed = capsys.readouterr().out
    assert "relations_lenient" in printed and str(out) in printed
    table = pd.read_csv(out)
    assert list(table["category"]) == list(CATEGORIES)
    pd.testing.assert_frame_equal(table, parser_result.overall, check_dtype=False)
    assert len(pd.read_csv(per)) == len(result.per_caption) == len(parser_result.per_caption)
