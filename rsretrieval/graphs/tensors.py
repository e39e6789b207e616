"""Embedded graphs as packed tensors (thesis sec. 5.2.2 vanilla model; input of GNNs and graph matching).

A :class:`GraphBatch` holds many graphs at once: node embeddings as :class:`PackedVectors` (graph k
owns node rows ``offsets[k]:offsets[k+1]``), ``edge_index`` (2, E) with GLOBAL node rows, the edge
text embeddings ``edge_attr`` (E, D) and ``edge_offsets`` (graph k owns edge columns
``edge_offsets[k]:edge_offsets[k+1]``).

Empty graphs (no nodes, e.g. a caption the parser found no object in) get ONE placeholder node
whose text is the empty string, embedded like any text, and no edges; ``empty`` flags them. Why:
``PackedVectors`` needs >= 1 row per item, and the empty string carries no content (unlike a word
such as "scene", which would match the scene hyper-nodes), while all empty graphs stay equal to
each other on both sides of a query.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsretrieval._lazy import lazy_import
from rsretrieval.graphs.elements import GraphElements
from rsretrieval.graphs.embedder import TextEmbedder
from rsretrieval.matching.late_interaction import PackedVectors

PLACEHOLDER_TEXT = ""  # text of the single node given to a graph without nodes


@dataclass
class GraphBatch:
    """Node/edge embeddings of ``n`` graphs; edges index global node rows of ``nodes.vectors``."""

    nodes: PackedVectors
    edge_index: torch.Tensor  # (2, E) int64, global node rows
    edge_attr: torch.Tensor  # (E, D_edge) float32
    edge_offsets: torch.Tensor  # (n + 1,) int64
    empty: torch.Tensor | None = None  # (n,) bool: graph had no nodes (one placeholder node)

    def __post_init__(self) -> None:
        self.edge_index = torch.as_tensor(self.edge_index, dtype=torch.int64).reshape(2, -1)
        self.edge_attr = torch.as_tensor(self.edge_attr, dtype=torch.float32)
        self.edge_offsets = torch.as_tensor(self.edge_offsets, dtype=torch.int64)
        n, e = len(self.nodes), self.edge_index.shape[1]
        self.empty = torch.zeros(n, dtype=torch.bool) if self.empty is None else torch.as_tensor(self.empty).bool()
        if len(self.edge_offsets) != n + 1 or self.edge_offsets[0] != 0 or self.edge_offsets[-1] != e \
                or (self.edge_offsets.diff() < 0).any():
            raise ValueError(f"edge_offsets must be {n + 1} non-decreasing values from 0 to {e}")
        if self.edge_attr.ndim != 2 or len(self.edge_attr) != e or len(self.empty) != n:
            raise ValueError(f"edge_attr {tuple(self.edge_attr.shape)} / empty {tuple(self.empty.shape)} "
                             f"do not fit {e} edges of {n} graphs")
        if e:  # every edge must stay inside its own graph's node rows
            graph = self.edge_graph()
            lo, hi = self.nodes.offsets[graph], self.nodes.offsets[graph + 1]
            if ((self.edge_index < lo) | (self.edge_index >= hi)).any():
                raise ValueError("edge_index refers to nodes outside the edge's own graph")

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def node_dim(self) -> int:
        return int(self.nodes.vectors.shape[1])

    @property
    def n_empty(self) -> int:
        return int(self.empty.sum())

    def node_graph(self) -> torch.Tensor:
        """Graph of every node row (PyG's ``batch`` vector). Shape: (N,)."""
        return torch.repeat_interleave(torch.arange(len(self)), self.nodes.sizes)

    def edge_graph(self) -> torch.Tensor:
        """Graph of every edge. Shape: (E,)."""
        return torch.repeat_interleave(torch.arange(len(self)), self.edge_offsets.diff())

    def graph(self, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Graph k alone: node vectors (n_k, D), LOCAL edge_index (2, e_k), edge_attr (e_k, D_edge)."""
        a, b = int(self.edge_offsets[k]), int(self.edge_offsets[k + 1])
        return self.nodes.item(k), self.edge_index[:, a:b] - self.nodes.offsets[k], self.edge_attr[a:b]


def embed_graphs(elements: list[GraphElements], embedder: TextEmbedder) -> GraphBatch:
    """Embed all node and edge texts of ``elements`` with ONE encode call over the distinct texts."""
    node_texts = [g.node_texts or [PLACEHOLDER_TEXT] for g in elements]
    rows: dict[str, int] = {}
    for texts in [*node_texts, *(g.edge_texts for g in elements)]:
        for t in texts:
            rows.setdefault(t, len(rows))
    table = torch.as_tensor(np.asarray(embedder.encode(list(rows)), np.float32)).reshape(len(rows), embedder.dim)
    node_rows = torch.tensor([rows[t] for texts in node_texts for t in texts], dtype=torch.int64)
    edge_rows = torch.tensor([rows[t] for g in elements for t in g.edge_texts], dtype=torch.int64)
    node_offsets = torch.tensor([0, *np.cumsum([len(t) for t in node_texts])], dtype=torch.int64)
    edge_offsets = torch.tensor([0, *np.cumsum([g.edge_count for g in elements])], dtype=torch.int64)
    local = [torch.tensor(g.edge_index, dtype=torch.int64).reshape(-1, 2) for g in elements]
    shift = torch.repeat_interleave(node_offsets[:-1], edge_offsets.diff())
    edge_index = (torch.cat(local).T + shift) if elements else torch.zeros((2, 0), dtype=torch.int64)
    return GraphBatch(PackedVectors(table[node_rows], node_offsets), edge_index, table[edge_rows], edge_offsets,
                      torch.tensor([not g.node_texts for g in elements], dtype=torch.bool))


def from_node_vectors(batch: GraphBatch, new_node_vectors: torch.Tensor | np.ndarray) -> GraphBatch:
    """The same graphs with new node vectors (e.g. a trained GNN's output); edges are shared, not copied."""
    v = torch.as_tensor(new_node_vectors)
    if v.ndim != 2 or len(v) != len(batch.nodes.vectors):
        raise ValueError(f"need ({len(batch.nodes.vectors)}, D) node vectors, got {tuple(v.shape)}")
    return GraphBatch(PackedVectors(v, batch.nodes.offsets), batch.edge_index, batch.edge_attr, batch.edge_offsets,
                      batch.empty)


def to_pyg(batch: GraphBatch) -> Any:
    """A ``torch_geometric.data.Batch`` (x, edge_index, edge_attr, batch, ptr, empty) without per-graph copies.

    The slice / increment bookkeeping is what ``Batch.from_data_list`` would build, so
    ``to_data_list()`` and ``get_example(k)`` work (graph k's ``edge_index`` back to local rows).
    """
    pyg = lazy_import("torch_geometric.data")
    n, ptr = len(batch), batch.nodes.offsets
    out = pyg.Batch(x=batch.nodes.vectors, edge_index=batch.edge_index, edge_attr=batch.edge_attr,
                    empty=batch.empty, batch=batch.node_graph(), ptr=ptr)
    out._num_graphs = n
    out._slice_dict = {"x": ptr, "edge_index": batch.edge_offsets, "edge_attr": batch.edge_offsets,
                       "empty": torch.arange(n + 1)}
    out._inc_dict = {"x": torch.zeros(n, dtype=torch.int64), "edge_index": ptr[:-1],
                     "edge_attr": torch.zeros(n, dtype=torch.int64), "empty": torch.zeros(n, dtype=torch.int64)}
    return out


def from_pyg(data: Any) -> GraphBatch:
    """Back from a PyG ``Batch`` (or any object with x, edge_index, edge_attr, batch/ptr)."""
    ptr = getattr(data, "ptr", None)
    if ptr is None:  # a single Data: one graph
        ptr = torch.tensor([0, data.num_nodes])
    n = len(ptr) - 1
    edge_graph = torch.bucketize(data.edge_index[0].contiguous(), ptr[1:], right=True)  # source node row -> graph
    edge_offsets = torch.tensor([0, *torch.bincount(edge_graph, minlength=n).cumsum(0).tolist()], dtype=torch.int64)
    empty = getattr(data, "empty", None)
    return GraphBatch(PackedVectors(data.x, ptr), data.edge_index, data.edge_attr, edge_offsets, empty)


def save_graph_batch(batch: GraphBatch, path: str | Path) -> Path:
    """Write ``batch`` to ``path`` (.npz). Node and edge rows are stored once per distinct vector."""
    arrays: dict[str, np.ndarray] = {"node_offsets": batch.nodes.offsets.numpy(), "edge_index": batch.edge_index.numpy(),
                                     "edge_offsets": batch.edge_offsets.numpy(), "empty": batch.empty.numpy()}
    if batch.edge_attr.shape[1] == batch.node_dim:  # one table: node and edge texts share vectors ("white", ...)
        parts = [batch.nodes.vectors.detach().cpu().float().numpy(), batch.edge_attr.detach().cpu().numpy()]
        arrays["table"], arrays["rows"] = dedupe_rows(parts)
    else:
        arrays["node_vectors"] = batch.nodes.vectors.detach().cpu().float().numpy()
        arrays["edge_attr"] = batch.edge_attr.detach().cpu().numpy()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return path


def load_graph_batch(path: str | Path) -> GraphBatch:
    """Read a batch written by :func:`save_graph_batch`."""
    with np.load(path, allow_pickle=False) as z:
        node_offsets = torch.from_numpy(z["node_offsets"])
        n_nodes = int(node_offsets[-1])
        if "table" in z:
            table, rows = torch.from_numpy(z["table"]), torch.from_numpy(z["rows"])
            nodes, edge_attr = table[rows[:n_nodes]], table[rows[n_nodes:]]
        else:
            nodes, edge_attr = torch.from_numpy(z["node_vectors"]), torch.from_numpy(z["edge_attr"])
        return GraphBatch(PackedVectors(nodes, node_offsets), torch.from_numpy(z["edge_index"]), edge_attr,
                          torch.from_numpy(z["edge_offsets"]), torch.from_numpy(z["empty"]))


def dedupe_rows(parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of the stacked ``parts`` and each stacked row's index among them; lossless.

    Rows are grouped by a 4-d random projection (a unique over N x D bytes, or one big stacked copy,
    is slow) and the grouping is checked bitwise; a fingerprint collision falls back to exact bytes.
    """
    parts = [np.ascontiguousarray(p, dtype=np.float32) for p in parts]
    proj = np.random.default_rng(0).standard_normal((parts[0].shape[1], 4)).astype(np.float32)
    sizes = np.cumsum([0, *(len(p) for p in parts)])
    if sizes[-1] == 0:
        return np.zeros((0, parts[0].shape[1]), np.float32), np.zeros(0, np.int64)

    def rows_of(keys: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        k = np.ascontiguousarray(np.concatenate(keys))
        void = k.view(np.dtype((np.void, k.itemsize * k.shape[1]))).ravel()
        _, first, inverse = np.unique(void, return_index=True, return_inverse=True)
        part = np.searchsorted(sizes, first, side="right") - 1
        table = np.empty((len(first), parts[0].shape[1]), np.float32)
        for j, p in enumerate(parts):
            table[part == j] = p[first[part == j] - sizes[j]]
        return table, inverse.astype(np.int64).ravel()

    table, inverse = rows_of([p @ proj for p in parts])
    if all(np.array_equal(table[inverse[sizes[j]:sizes[j + 1]]], p) for j, p in enumerate(parts)):
        return table, inverse
    return rows_of(parts)
