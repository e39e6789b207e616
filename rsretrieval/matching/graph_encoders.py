"""Graph encoders over the vanilla node embeddings (thesis sec. 5.2.2): vanilla, GAT, GATv2, graph transformer.

All map node embeddings x (N, D), a directed ``edge_index`` (2, E) and edge embeddings ``edge_attr``
(E, edge_dim) to L2-normalised node embeddings (N, D) in the input space, so the encoded nodes feed
the same similarity modules (Hungarian, GMN) as vanilla ones. Several graphs are encoded at once as
one disjoint union (concatenated nodes, offset edge indices).

* ``vanilla``: the L2-normalised input, no parameters (no torch_geometric needed);
* ``gat`` / ``gatv2`` / ``transformer``: ``layers`` pre-norm residual blocks
  x <- x + gamma * conv(LayerNorm(x)), conv = PyG GATConv / GATv2Conv / TransformerConv with ``heads``
  heads of width D / heads, concatenated (so widths stay D; when D is not a multiple of ``heads``,
  heads of width D averaged). gamma is a per-channel LayerScale initialised to 0.1 / sqrt(D): the conv
  output has per-channel scale ~1 (it reads a LayerNorm-ed input) while unit-norm inputs have
  ~1 / sqrt(D), so an untrained encoder moves each node by ~0.1 of its norm, close to the identity,
  and training can grow the update. GAT(v2) adds self-loops (their edge features: the mean of the
  node's incoming ones, zeros when it has none); TransformerConv keeps a root (skip) weight, so nodes
  without edges still get an update.
* edge features: the edge text embeddings go through one learned linear map to ``edge_hidden``
  channels, shared by the layers (0 = the raw embeddings): every layer's per-head edge transform then
  reads ``edge_hidden`` instead of D inputs per edge, which is most of the encoder's cost otherwise.

Direction: PyG sends messages source -> target only, and graph edges point object -> attribute and
subject -> object, so without help an object never hears its own count or colour. With
``reverse_edges`` (default) every edge also runs backwards; the conv's edge features get a 2-d
direction flag ([1, 0] forward, [0, 1] reverse), so "attribute -> object" messages are told apart
from "object -> attribute" ones.

Shapes: x (N, D), edge_index (2, E), edge_attr (E, edge_dim) -> (N, D).
"""

from __future__ import annotations

import torch
from torch import nn

from rsretrieval._lazy import lazy_import
from rsretrieval.config import GraphEncoderConfig

LAYER_SCALE_INIT = 0.1  # relative size of an untrained layer's update


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


class VanillaEncoder(nn.Module):
    """The vanilla embedding model: node embeddings unchanged (L2-normalised)."""

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor | None = None,
                edge_attr: torch.Tensor | None = None) -> torch.Tensor:
        return _normalise(x)


def _conv(kind: str, dim: int, heads: int, edge_dim: int, dropout: float, concat_heads: bool) -> nn.Module:
    pyg = lazy_import("torch_geometric.nn")
    concat = concat_heads and dim % heads == 0  # heads of width dim / heads side by side; else full-width, averaged
    width = dim // heads if concat else dim
    cls = {"gat": pyg.GATConv, "gatv2": pyg.GATv2Conv, "transformer": pyg.TransformerConv}.get(kind)
    if cls is None:
        raise ValueError(f"unknown graph encoder kind {kind!r}")
    return cls(dim, width, heads=heads, concat=concat, dropout=dropout, edge_dim=edge_dim)


def with_reverse_edges(edge_index: torch.Tensor, edge_attr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every edge forwards and backwards, its features tagged with a direction flag.

    Shapes: edge_index (2, E), edge_attr (E, F) -> (2, 2E), (2E, F + 2); forward edges first.
    """
    e = edge_index.shape[1]
    flags = edge_attr.new_zeros((2 * e, 2))
    flags[:e, 0], flags[e:, 1] = 1.0, 1.0
    return torch.cat([edge_index, edge_index.flip(0)], dim=1), torch.cat([edge_attr.repeat(2, 1), flags], dim=1)


class MessagePassingEncoder(nn.Module):
    """``layers`` pre-norm residual message-passing blocks with LayerScale; L2-normalised output."""

    def __init__(self, kind: str, dim: int, edge_dim: int, layers: int, heads: int, dropout: float,
                 reverse_edges: bool = True, edge_hidden: int = 0, concat_heads: bool = False) -> None:
        super().__init__()
        self.kind, self.edge_dim, self.reverse_edges = kind, edge_dim, reverse_edges
        self.edge_proj = nn.Linear(edge_dim, edge_hidden) if edge_hidden else None
        conv_edge_dim = (edge_hidden or edge_dim) + (2 if reverse_edges else 0)
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(layers))
        self.convs = nn.ModuleList(_conv(kind, dim, heads, conv_edge_dim, dropout, concat_heads) for _ in range(layers))
        self.gammas = nn.ParameterList(nn.Parameter(torch.full((dim,), LAYER_SCALE_INIT / dim ** 0.5))
                                       for _ in range(layers))

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor | None = None,
                edge_attr: torch.Tensor | None = None) -> torch.Tensor:
        if edge_index is None:  # no edges: every node only sees itself
            edge_index = torch.zeros((2, 0), dtype=torch.long, device=x.device)
        if edge_attr is None:
            edge_attr = x.new_zeros((edge_index.shape[1], self.edge_dim))
        if edge_attr.shape[0] != edge_index.shape[1]:
            raise ValueError(f"edge_attr has {edge_attr.shape[0]} rows for {edge_index.shape[1]} edges")
        edge_attr = edge_attr.to(x.dtype)
        if self.edge_proj is not None:
            edge_attr = self.edge_proj(edge_attr)
        if self.reverse_edges:
            edge_index, edge_attr = with_reverse_edges(edge_index, edge_attr)
        h = _normalise(x)  # the vanilla embedding is the residual stream's starting point
        for norm, conv, gamma in zip(self.norms, self.convs, self.gammas):
            h = h + gamma * conv(norm(h), edge_index, edge_attr)
        return _normalise(h)


def build_graph_encoder(cfg: GraphEncoderConfig, dim: int, edge_dim: int) -> nn.Module:
    """The encoder of ``cfg.kind`` for node embeddings of width ``dim`` and edge embeddings of ``edge_dim``.

    Parameters are initialised from the current torch RNG (seed it for reproducible untrained encoders).
    """
    if cfg.kind == "vanilla":
        return VanillaEncoder()
    return MessagePassingEncoder(cfg.kind, dim, edge_dim, cfg.layers, cfg.heads, cfg.dropout, cfg.reverse_edges,
                                 cfg.edge_hidden, cfg.concat_heads)
