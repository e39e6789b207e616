"""Graphs as Arrow columns (rsretrieval.graphs.table): the same elements back, in blocks, by position and id."""

from __future__ import annotations

import pytest

from rsretrieval.graphs.elements import GraphElements
from rsretrieval.graphs.stats import collision_stats, size_stats
from rsretrieval.graphs.table import GraphTable


def _graphs(n: int) -> list[GraphElements]:
    out = [GraphElements([f"tank {i % 7}", "bare ground", str(i % 3)], [(0, 1), (0, 2)], ["adjacent to", "count"],
                         ["object", "object", "attribute"]) for i in range(n)]
    out[3] = GraphElements([], [], [])  # a caption that did not parse
    out[4] = GraphElements(["Airport"], [], [], ["scene"])
    return out


def test_round_trip_in_blocks() -> None:
    els = _graphs(1000)
    table = GraphTable.build([f"c{i}" for i in range(len(els))], iter(els), block=64)  # a generator is enough
    assert len(table) == 1000 and table.ids.to_pylist()[:2] == ["c0", "c1"]
    assert list(table) == els
    assert table[4] == els[4] and table[-1] == els[-1] and table[10:75] == els[10:75] and table[::100] == els[::100]
    assert table.take([5, 2]).elements() == [els[5], els[2]]
    assert table.select(["c9", "c3"]).elements() == [els[9], els[3]]
    with pytest.raises(IndexError):
        table[1000]
    with pytest.raises(KeyError, match="c1000"):
        table.select(["c1", "c1000"])


def test_statistics_read_the_table_like_the_list() -> None:
    els = _graphs(300)
    table = GraphTable.build([str(i) for i in range(300)], els)
    assert collision_stats(table) == collision_stats(els)
    assert size_stats(table) == size_stats(els)


def test_ids_and_elements_must_match_in_length() -> None:
    with pytest.raises(ValueError):
        GraphTable.build(["a", "b"], _graphs(5)[:1])


def test_empty_table() -> None:
    table = GraphTable.build([], [])
    assert len(table) == 0 and list(table) == [] and table[0:10] == []


def test_node_blocks_bound_graphs_and_nodes() -> None:
    """The node encoder's blocks: contiguous, covering every graph once, at most ``block`` graphs and
    ``max_nodes`` nodes each, except a single graph larger than that."""
    import numpy as np

    from rsretrieval.pipelines.benchmark.two_stage import node_blocks, node_counts

    counts = np.random.default_rng(0).integers(0, 40, 500)
    counts[7] = 200  # larger than a block on its own
    blocks = node_blocks(counts, block=64, max_nodes=150)
    assert blocks[0][0] == 0 and blocks[-1][1] == 500 and all(b[1] == c[0] for b, c in zip(blocks, blocks[1:]))
    for a, b in blocks:
        assert 0 < b - a <= 64
        assert np.maximum(counts[a:b], 1).sum() <= 150 or b - a == 1
    table = GraphTable.build(["a", "b"], [GraphElements(["x", "y"]), GraphElements([])])
    assert node_counts(table).tolist() == [2, 0] == node_counts(table.elements()).tolist()
    assert node_counts([np.zeros((3, 4))]).tolist() == [3]
