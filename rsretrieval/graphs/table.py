"""Graphs of a dataset split as Arrow columns: one row per caption or image, in the split's order.

At corpus size a graph per caption as Python objects (lists of strings, tuples) costs the driver
1.2 KB (caption graph) to 8 KB (image graph) on synthrs. A :class:`GraphTable` keeps them as Arrow list
columns (node texts, node kinds, edge ends, edge texts), 0.17 KB and 1.1-1.3 KB, and turns a block of rows
back into :class:`~rsretrieval.graphs.elements.GraphElements` only while that block is embedded
(``table[a:b]``), so what is alive at once is one block, not the split.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import overload

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rsretrieval.graphs.elements import GraphElements

BLOCK = 4096  # graphs converted at once (to Arrow when built, back to elements when read)
SCHEMA = pa.schema([("id", pa.string()), ("node_texts", pa.list_(pa.string())),
                    ("node_kinds", pa.list_(pa.string())), ("edge_src", pa.list_(pa.int32())),
                    ("edge_dst", pa.list_(pa.int32())), ("edge_texts", pa.list_(pa.string()))])


def _block_table(ids: Sequence[str], elements: Sequence[GraphElements]) -> pa.Table:
    return pa.table({"id": pa.array(list(ids), pa.string()),
                     "node_texts": [e.node_texts for e in elements],
                     "node_kinds": [list(e.node_kinds) for e in elements],
                     "edge_src": [[s for s, _ in e.edge_index] for e in elements],
                     "edge_dst": [[d for _, d in e.edge_index] for e in elements],
                     "edge_texts": [e.edge_texts for e in elements]}, schema=SCHEMA)


class GraphTable(Sequence[GraphElements]):
    """Graph elements of one graph set, as Arrow columns; ``table[i]`` / ``table[a:b]`` give elements."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table.combine_chunks() if table.num_rows else table

    @classmethod
    def build(cls, ids: Iterable[str], elements: Iterable[GraphElements], block: int = BLOCK) -> "GraphTable":
        """From ids and elements in the same order, converted ``block`` graphs at a time (generators
        welcome: neither is held whole)."""
        parts, bid, bel = [], [], []
        for i, e in zip(ids, elements, strict=True):
            bid.append(i)
            bel.append(e)
            if len(bid) == block:
                parts.append(_block_table(bid, bel))
                bid, bel = [], []
        parts.append(_block_table(bid, bel))
        return cls(pa.concat_tables(parts))

    @property
    def ids(self) -> pa.ChunkedArray:
        return self.table["id"]

    def __len__(self) -> int:
        return self.table.num_rows

    @overload
    def __getitem__(self, index: int) -> GraphElements: ...

    @overload
    def __getitem__(self, index: slice) -> list[GraphElements]: ...

    def __getitem__(self, index: int | slice) -> GraphElements | list[GraphElements]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return self.take(np.arange(start, stop, step)).elements()
            return GraphTable(self.table.slice(start, max(0, stop - start))).elements()
        if not -len(self) <= index < len(self):
            raise IndexError(f"graph {index} of {len(self)}")
        return GraphTable(self.table.slice(index % len(self), 1)).elements()[0]

    def __iter__(self) -> Iterator[GraphElements]:
        for a in range(0, len(self), BLOCK):
            yield from self[a : a + BLOCK]

    def elements(self) -> list[GraphElements]:
        """Every row as elements (for a block or a small split)."""
        cols = [self.table[c].to_pylist() for c in ("node_texts", "node_kinds", "edge_src", "edge_dst", "edge_texts")]
        return [GraphElements(nodes, list(zip(src, dst)), edges, kinds)
                for nodes, kinds, src, dst, edges in zip(*cols)]

    def take(self, rows: np.ndarray | Sequence[int]) -> "GraphTable":
        """The rows at these positions, in that order."""
        return GraphTable(self.table.take(pa.array(np.asarray(rows, dtype=np.int64))))

    def select(self, ids: Sequence[str]) -> "GraphTable":
        """The graphs of these ids, in that order; an unknown id raises ``KeyError`` naming it."""
        rows = pc.index_in(pa.array(list(ids), pa.string()), value_set=self.table["id"].combine_chunks())
        if rows.null_count:
            missing = [i for i, r in zip(ids, rows.to_pylist()) if r is None]
            raise KeyError(f"no graph for {len(missing)} ids, e.g. {missing[:3]}")
        return self.take(rows.to_numpy())

    def node_counts(self) -> np.ndarray:
        """Nodes per graph, from the Arrow offsets (no graph is built)."""
        return pc.list_value_length(self.table["node_texts"]).to_numpy(zero_copy_only=False).astype(np.int64)

    @property
    def nbytes(self) -> int:
        return self.table.nbytes
