"""The trainable graph matcher (thesis secs. 5.2.2, 5.3.4, 5.4): graph encoder + GMN, and its checkpoint file.

:class:`GraphMatcher` = a graph encoder (vanilla = frozen node embeddings, or GAT / GATv2 / graph
transformer) followed by a Graph Matching Network. For a contrastive batch of B query graphs and B
document graphs it scores all B x B pairs in one pass (:meth:`GraphMatcher.batch_scores`): the
encoded nodes are padded, one einsum gives every pair's node-similarity matrix, and the GMN reads
them; the same matrices give the max-mean node score used as a differentiable stand-in for the
Hungarian assignment when the encoder is trained for Hungarian matching (the assignment itself has
no useful gradient; max-mean upper-bounds the thesis' matched-mean score and equals it when the
best matches are distinct).

The 'vanilla' and 'trained' columns of the thesis differ only in the node encoder: both use the
configured GMN as it is (:func:`training_gmn_config` only sets ``use_global``). The GMN passes
gradient to the node similarities only with ``soft_binning``; with hard counts a trained encoder
learns from the max-mean node loss alone.

A VG2VG matcher is trained end to end (Fig. 15): its own copy of the encoder with the VG2VG GMN
(global cosine input, eq. 5), warm-started from the G2G matcher of the same variant
(:func:`vg2vg_init`).

Checkpoint file (``torch.save`` dict, loads with ``weights_only=True``)::

    {"format": "rsretrieval-graph-matcher@2", "embeddings": "vanilla" | "trained", "variant": str | None,
     "encoder_config": {...}, "gmn_config": {...}, "node_dim": D, "edge_dim": D_e,
     "encoder": state_dict, "gmn_g2g": state_dict,
     "vg2vg": {backbone: {"gmn_config": {...}, "state": state_dict, "encoder": state_dict}}, "meta": {...}}

Files of format @1 (one-way message passing, VG2VG heads on the G2G encoder) still load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from rsretrieval.config import GMNConfig, GraphEncoderConfig
from rsretrieval.graphs.tensors import GraphBatch
from rsretrieval.matching.graph_encoders import build_graph_encoder
from rsretrieval.matching.gmn import GraphMatchingNetwork
from rsretrieval.matching.late_interaction import PackedVectors

CHECKPOINT_FORMAT = "rsretrieval-graph-matcher@2"
OLD_FORMATS = ("rsretrieval-graph-matcher@1",)


def training_gmn_config(gmn: GMNConfig, use_global: bool) -> GMNConfig:
    """The GMN config of a G2G (``use_global`` False) or VG2VG matcher: the configured one, for both node
    encoders alike, so that 'vanilla' and 'trained' cells differ only in the encoder."""
    return gmn.model_copy(update={"use_global": use_global})


def select_graphs(batch: GraphBatch, idx: torch.Tensor | list[int]) -> GraphBatch:
    """Graphs ``idx`` of ``batch`` as a new batch (node rows gathered, edges re-indexed)."""
    idx = torch.as_tensor(idx, dtype=torch.int64)
    n_off, e_off = batch.nodes.offsets, batch.edge_offsets
    sizes, esizes = n_off[idx + 1] - n_off[idx], e_off[idx + 1] - e_off[idx]
    node_rows = torch.cat([torch.arange(int(n_off[k]), int(n_off[k + 1])) for k in idx.tolist()])
    edge_cols = torch.cat([torch.arange(int(e_off[k]), int(e_off[k + 1])) for k in idx.tolist()]) if len(idx) else \
        torch.zeros(0, dtype=torch.int64)
    new_off = torch.cat([torch.zeros(1, dtype=torch.int64), sizes.cumsum(0)])
    shift = torch.repeat_interleave(new_off[:-1] - n_off[idx], esizes)  # old global row -> new global row
    return GraphBatch(PackedVectors(batch.nodes.vectors[node_rows], new_off), batch.edge_index[:, edge_cols] + shift,
                      batch.edge_attr[edge_cols], torch.cat([torch.zeros(1, dtype=torch.int64), esizes.cumsum(0)]),
                      batch.empty[idx])


def max_mean(s: torch.Tensor, q_mask: torch.Tensor, d_mask: torch.Tensor) -> torch.Tensor:
    """Mean over real query nodes of the best real document node: s (..., N_q, N_d) -> (...)."""
    best = s.masked_fill(~d_mask[..., None, :], float("-inf")).amax(-1)
    return best.masked_fill(~q_mask, 0).sum(-1) / q_mask.sum(-1).clamp_min(1)


class GraphMatcher(nn.Module):
    """Graph encoder + GMN; ``use_global`` GMNs (VG2VG) take the global cosine of each pair."""

    def __init__(self, encoder_cfg: GraphEncoderConfig, gmn_cfg: GMNConfig, node_dim: int, edge_dim: int,
                 seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.encoder = build_graph_encoder(encoder_cfg, node_dim, edge_dim)
        self.gmn = GraphMatchingNetwork(gmn_cfg, seed=seed)
        self.encoder_cfg, self.gmn_cfg = encoder_cfg, gmn_cfg
        self.node_dim, self.edge_dim = node_dim, edge_dim

    @property
    def trains_encoder(self) -> bool:
        return self.encoder_cfg.kind != "vanilla"

    def encode(self, batch: GraphBatch) -> PackedVectors:
        """L2-normalised encoded node vectors of every graph of ``batch``."""
        x = batch.nodes.vectors.to(self._device())
        out = self.encoder(x, batch.edge_index.to(x.device), batch.edge_attr.to(x.device))
        return PackedVectors(out, batch.nodes.offsets)

    def _device(self) -> torch.device:
        return next(iter(self.gmn.parameters())).device

    def batch_scores(self, queries: GraphBatch, docs: GraphBatch,
                     sim_vec: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(GMN scores, max-mean node scores), both (B_q, B_d), of every query x document pair."""
        qp, qm = self.encode(queries).padded()
        dp, dm = self.encode(docs).padded()
        dev = qp.device
        qm, dm = qm.to(dev), dm.to(dev)
        s = torch.einsum("and,bmd->abnm", qp, dp)  # (B_q, B_d, N_q, N_d), nodes are unit vectors
        bq, bd, nq, nd = s.shape
        q_mask = qm[:, None, :].expand(bq, bd, nq)
        d_mask = dm[None, :, :].expand(bq, bd, nd)
        flat_sim = None if sim_vec is None else sim_vec.reshape(-1).to(dev)
        gmn = self.gmn.similarity_scores(s.reshape(-1, nq, nd), q_mask.reshape(-1, nq), d_mask.reshape(-1, nd), flat_sim)
        return gmn.reshape(bq, bd), max_mean(s, q_mask, d_mask)

    def forward(self, queries: GraphBatch, docs: GraphBatch,
                sim_vec: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.batch_scores(queries, docs, sim_vec)  # DDP calls forward


def warm_start_vg2vg(g2g_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """VG2VG GMN weights that start as the given G2G GMN: the score MLP's extra input (the global
    cosine) gets weight 0, so training begins at the G2G ranking and learns how much cosine to add."""
    out = {k: v.clone() for k, v in g2g_state.items()}
    w = out["score_mlp.0.weight"]
    out["score_mlp.0.weight"] = torch.cat([w, w.new_zeros((w.shape[0], 1))], dim=1)
    return out


def vg2vg_init(g2g: GraphMatcher) -> dict[str, torch.Tensor]:
    """Initial state of an end-to-end VG2VG matcher: the G2G matcher's encoder and its GMN warm-started
    (:func:`warm_start_vg2vg`)."""
    out = {f"encoder.{k}": v.detach().clone() for k, v in g2g.encoder.state_dict().items()}
    out.update({f"gmn.{k}": v for k, v in warm_start_vg2vg(g2g.gmn.state_dict()).items()})
    return out


def _cpu(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.cpu() for k, v in module.state_dict().items()}


def save_matcher(path: str | Path, embeddings: str, model: GraphMatcher, meta: dict[str, Any],
                 vg2vg: dict[str, GraphMatcher] | None = None, variant: str | None = None) -> Path:
    """Write the checkpoint file (atomically); ``vg2vg``: backbone -> its end-to-end VG2VG matcher."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": CHECKPOINT_FORMAT, "embeddings": embeddings, "variant": variant,
             "encoder_config": model.encoder_cfg.model_dump(),
             "gmn_config": model.gmn_cfg.model_dump(), "node_dim": model.node_dim, "edge_dim": model.edge_dim,
             "encoder": _cpu(model.encoder), "gmn_g2g": _cpu(model.gmn),
             "vg2vg": {name: {"gmn_config": head.gmn_cfg.model_dump(), "state": _cpu(head.gmn), "encoder": _cpu(head.encoder)}
                       for name, head in (vg2vg or {}).items()}, "meta": meta}
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return path


def load_matcher_file(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict; a clear error for files that are not graph-matcher checkpoints."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"graph-matcher checkpoint {path} does not exist; train one with "
                                "`python rayjobs/train.py` or leave graph_matching.gmn_checkpoint unset")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") not in (CHECKPOINT_FORMAT, *OLD_FORMATS):
        raise ValueError(f"{path} is not a graph-matcher checkpoint ({CHECKPOINT_FORMAT}); it was not written by "
                         "rayjobs/train.py")
    return state


def matcher_from_state(state: dict[str, Any], head: str = "g2g") -> GraphMatcher:
    """The matcher of a checkpoint dict: the G2G matcher (``head="g2g"``) or a backbone's VG2VG matcher
    (its own encoder; in @1 files the G2G encoder)."""
    # @1 files predate reverse edges and edge projections: messages one way, raw edge embeddings
    enc = GraphEncoderConfig(**{"reverse_edges": False, "edge_hidden": 0, "concat_heads": False, **state["encoder_config"]})
    encoder_state = state["encoder"]
    if head == "g2g":
        gmn_cfg, gmn_state = GMNConfig(**state["gmn_config"]), state["gmn_g2g"]
    elif head in state["vg2vg"]:
        gmn_cfg, gmn_state = GMNConfig(**state["vg2vg"][head]["gmn_config"]), state["vg2vg"][head]["state"]
        encoder_state = state["vg2vg"][head].get("encoder", encoder_state)
    else:
        raise KeyError(f"checkpoint has no VG2VG head for backbone {head!r} (it has: {sorted(state['vg2vg']) or 'none'})")
    model = GraphMatcher(enc, gmn_cfg, state["node_dim"], state["edge_dim"])
    model.encoder.load_state_dict(encoder_state)
    model.gmn.load_state_dict(gmn_state)
    return model.eval()
