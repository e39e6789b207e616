"""Graph Matching Network (thesis sec. 5.3.4, eqs. 3-5): a learned score from the node-similarity matrix.

For a (query graph, document graph) pair with node embeddings E_q (N_q, D) and E_d (N_d, D):

* S = cosine similarities (N_q, N_d);
* eq. 3: h_i = MLP(Hist(S_i,1:N_d)): ``bins`` bins per query node over its similarities to the real
  document nodes; range fixed ([-1, 1], widened by 1e-4 so exact +-1 cosines fall inside) or dynamic
  (the pair's min..max of S, the top edge 1e-3 bin widths above the max so the max lands in the last bin);
  hard counts or soft binning (each value split between its two nearest bin centres with triangular
  weights, so the histogram is differentiable in S; beyond the outer centres it goes to the edge bin);
  both divided by N_d, so every histogram sums to 1;
* eq. 4: alpha_k = softmax over the real query nodes of q_att_k^T h_i, one learned q_att_k per head;
  v = MLP(concat_k sum_i alpha_ik h_i);
* eq. 5: score = MLP([v; sim_vec]) for VG2VG (``use_global``), MLP(v) for G2G.

MLPs are Linear-ReLU-Linear. An untrained (seeded, PyTorch default init) network is a fixed random
function of the per-node similarity histograms (and, in VG2VG, of sim_vec through random weights of
arbitrary sign): its scores are reproducible for a seed, numerically small (spread ~0.02) and carry no
learned notion of relevance; they may even rank better-matching graphs lower. Rankings from it are an
"untrained" control, not the thesis' (trained) GMN results.

:meth:`GraphMatchingNetwork.score_matrix` scores all query x document pairs without autograd in
blocks (query chunk x document block, graphs sorted by size so that padding stays small; the kernel
is :mod:`rsretrieval.matching.gmn_blocks`). Per block: one GEMM gives the bin positions directly (fixed
range: scaled query vectors accumulated onto a buffer prefilled with the offset), a float->int64 copy
gives the bins, one ``scatter_add_`` builds all histograms (padded document slots weigh 0), then one
(rows, bins) x (bins, hidden) GEMM with a fused ReLU (oneDNN on CPU). Exact algebra keeps the
per-(query node, document) work to that: the first-layer bias is folded into the weights (histograms
sum to 1); the second eq.-3 layer is linear, so it goes through the attention (its bias cancels in the
softmax) and is applied once per pair after pooling, merged with the first v_mlp layer; v_mlp's last
layer is merged with the first score layer. Padded slots repeat the graph's first node, so the
dynamic min..max needs no masking; padded query rows get -inf attention logits.
"""

from __future__ import annotations

import torch
from torch import nn

from rsretrieval.config import GMNConfig
from rsretrieval.matching.gmn_constants import FIXED_HALF_WIDTH, RANGE_EPS, TOP_MARGIN
from rsretrieval.matching.late_interaction import PackedVectors



def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, d_out))


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _histogram(t: torch.Tensor, weights: torch.Tensor, bins: int, soft: bool) -> torch.Tensor:
    """Histograms over the last dim of bin positions ``t`` (hard bin = floor(t)); autograd-friendly."""
    w = weights.expand_as(t)
    hist = t.new_zeros((*t.shape[:-1], bins))
    if not soft:
        return hist.scatter_add(-1, t.detach().floor().clamp(0, bins - 1).long(), w)
    u = (t - 0.5).clamp(0, bins - 1)  # position relative to bin centres
    k = u.detach().floor().clamp(max=bins - 2)
    frac = u - k  # gradient w.r.t. S flows through frac
    k = k.long()
    return hist.scatter_add(-1, k, w * (1 - frac)).scatter_add(-1, k + 1, w * frac)


class GraphMatchingNetwork(nn.Module):
    """Eqs. 3-5 from a :class:`GMNConfig`; ``seed`` fixes the (untrained) initial weights."""

    def __init__(self, cfg: GMNConfig | None = None, seed: int = 0) -> None:
        super().__init__()
        self.cfg = cfg = cfg or GMNConfig()
        with torch.random.fork_rng(devices=[]):  # seeded weights without touching the global RNG
            torch.manual_seed(seed)
            self.hist_mlp = _mlp(cfg.bins, cfg.hidden, cfg.hidden)  # eq. 3
            self.q_att = nn.Parameter(torch.randn(cfg.heads, cfg.hidden) / cfg.hidden ** 0.5)  # eq. 4
            self.v_mlp = _mlp(cfg.heads * cfg.hidden, cfg.hidden, cfg.hidden)  # eq. 4
            self.score_mlp = _mlp(cfg.hidden + int(cfg.use_global), cfg.hidden, 1)  # eq. 5

    # ---- shared pieces ----------------------------------------------------------------------
    def positions(self, s: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Bin positions of similarities ``s`` (..., N_q, N_d): hard bin = floor, in [0, bins)."""
        bins = self.cfg.bins
        if self.cfg.hist_range == "fixed":
            return (s + FIXED_HALF_WIDTH) * (bins / (2 * FIXED_HALF_WIDTH))
        inf = torch.tensor(float("inf"), device=s.device)  # min..max over real entries of each pair
        lo = (s if mask is None else torch.where(mask, s, inf)).amin(dim=(-2, -1), keepdim=True)
        hi = (s if mask is None else torch.where(mask, s, -inf)).amax(dim=(-2, -1), keepdim=True)
        return (s - lo) * ((bins - TOP_MARGIN) / (hi - lo).clamp_min(RANGE_EPS))

    def _score(self, pooled: torch.Tensor, sim_vec: torch.Tensor | None) -> torch.Tensor:
        """Eqs. 4 (v = MLP) and 5: pooled (P, heads * hidden) -> scores (P,)."""
        v = self.v_mlp(pooled)
        if self.cfg.use_global:
            if sim_vec is None:
                raise ValueError("use_global (VG2VG) needs sim_vec, the global cosine of each pair")
            v = torch.cat([v, sim_vec.reshape(-1, 1).to(v.dtype)], dim=1)
        return self.score_mlp(v).squeeze(-1)

    def histograms(self, s: torch.Tensor, q_mask: torch.Tensor | None = None,
                   d_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Per-query-node histograms (B, N_q, bins) of similarities ``s`` (B, N_q, N_d); masks True = real.

        Padded document nodes enter no histogram (weight 0) nor the dynamic range; rows sum to 1.
        """
        b, nq, nd = s.shape
        q_mask = torch.ones((b, nq), dtype=torch.bool, device=s.device) if q_mask is None else q_mask.bool()
        d_mask = torch.ones((b, nd), dtype=torch.bool, device=s.device) if d_mask is None else d_mask.bool()
        t = self.positions(s, q_mask[:, :, None] & d_mask[:, None, :])
        w = d_mask.to(s.dtype) / d_mask.sum(1, keepdim=True).to(s.dtype)  # padded document nodes weigh 0
        return _histogram(t, w[:, None, :], self.cfg.bins, self.cfg.soft_binning)

    # ---- training: a batch of pairs ---------------------------------------------------------
    def pair_scores(self, q_nodes: torch.Tensor, q_mask: torch.Tensor | None, d_nodes: torch.Tensor,
                    d_mask: torch.Tensor | None, sim_vec: torch.Tensor | None = None) -> torch.Tensor:
        """Scores of B padded pairs: q_nodes (B, N_q, D), d_nodes (B, N_d, D), masks True = real -> (B,)."""
        s = _normalise(q_nodes) @ _normalise(d_nodes).transpose(1, 2)  # (B, N_q, N_d)
        return self.similarity_scores(s, q_mask, d_mask, sim_vec)

    def similarity_scores(self, s: torch.Tensor, q_mask: torch.Tensor | None, d_mask: torch.Tensor | None,
                          sim_vec: torch.Tensor | None = None) -> torch.Tensor:
        """Eqs. 3-5 from the node similarity matrices ``s`` (P, N_q, N_d) of P pairs -> (P,) scores."""
        b, nq = s.shape[:2]
        q_mask = torch.ones((b, nq), dtype=torch.bool, device=s.device) if q_mask is None else q_mask.bool()
        h = self.hist_mlp(self.histograms(s, q_mask, d_mask))  # eq. 3
        logits = (h @ self.q_att.T).masked_fill(~q_mask[:, :, None], float("-inf"))
        alpha = logits.softmax(dim=1)  # (B, N_q, heads): padded query nodes get weight 0
        pooled = torch.einsum("bik,bih->bkh", alpha, h).reshape(b, -1)
        return self._score(pooled, sim_vec)

    # ---- retrieval: every query x every document --------------------------------------------
    @torch.no_grad()
    def score_matrix(self, queries: PackedVectors, docs: PackedVectors, sim_vec: torch.Tensor | None = None,
                     chunk_size: int | None = None, doc_block: int | None = None,
                     profile: dict[str, float] | None = None) -> torch.Tensor:
        """Scores (Q, N_docs) of all pairs, on the device of ``queries.vectors`` (the module must be there).

        ``sim_vec`` (Q, N_docs): the global cosines, required for VG2VG (``use_global``), ignored for G2G.
        ``chunk_size`` queries (default ``cfg.chunk_size``) x ``doc_block`` documents per block (default:
        about ``BLOCK_ELEMENTS[device type]`` similarities per block). ``profile``: seconds per stage are
        added to it (similarity, histogram, mlp, other; synchronises CUDA, so only for benchmarks).
        Bins match the per-pair formula except for similarities within ~1e-6 of a bin edge (the GEMM
        rounds differently), which may land in the neighbouring bin.
        """
        from rsretrieval.matching.gmn_blocks import BlockScorer  # the batched kernel lives beside

        return BlockScorer(self, queries, docs, chunk_size or self.cfg.chunk_size, doc_block, profile)(sim_vec)


@torch.no_grad()
def gmn_reference(model: GraphMatchingNetwork, query: torch.Tensor, document: torch.Tensor,
                  sim_vec: float | None = None) -> float:
    """Eqs. 3-5 for one unpadded pair, literally (per-node loops, unfolded MLPs): the test oracle."""
    cfg = model.cfg
    s = _normalise(query.float()) @ _normalise(document.float()).T  # (N_q, N_d)
    t = model.positions(s)
    rows = []
    for ti in t:  # one histogram per query node
        if cfg.soft_binning:
            u = (ti - 0.5).clamp(0, cfg.bins - 1)
            centres = torch.arange(cfg.bins, dtype=s.dtype, device=s.device)
            rows.append((1 - (u[:, None] - centres[None, :]).abs()).clamp_min(0).sum(0))  # triangular kernel
        else:
            rows.append(torch.bincount(ti.floor().clamp(0, cfg.bins - 1).long(), minlength=cfg.bins).to(s.dtype))
    h = model.hist_mlp(torch.stack(rows) / s.shape[1])  # (N_q, hidden), eq. 3
    pooled = [torch.softmax(h @ q, dim=0) @ h for q in model.q_att]  # eq. 4, one pooling per head
    v = model.v_mlp(torch.cat(pooled))
    if cfg.use_global:
        v = torch.cat([v, torch.tensor([float(sim_vec)], device=v.device)])
    return float(model.score_mlp(v))
