"""The batched GMN kernel behind :meth:`GraphMatchingNetwork.score_matrix` (all pairs, no autograd).

Queries and documents are sorted by node count and cut into blocks (query chunk x document block),
each padded to its own largest graph, so padding costs little. Documents are padded once; buffers
are allocated once per call and reused by every block (fresh multi-MB tensors per block would pay
page faults on every pass). See the module docstring of :mod:`rsretrieval.matching.gmn` for the
algebra (folded bin map, folded biases, the second eq.-3 layer applied after pooling).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from torch import nn

from rsretrieval.matching.gmn_constants import BLOCK_ELEMENTS, FIXED_HALF_WIDTH, RANGE_EPS, TOP_MARGIN, stage_clock
from rsretrieval.matching.late_interaction import PackedVectors


COLUMN_ALIGN = 16  # GEMM output widths not a multiple of 8 run up to 30% slower (MKL, AVX-512)


def default_doc_block(chunk: int, q_mean: float, d_mean: float, device: str | torch.device = "cpu") -> int:
    """Documents per block so that a block holds about ``BLOCK_ELEMENTS`` similarities (mean sizes)."""
    target = BLOCK_ELEMENTS["cuda" if torch.device(device).type == "cuda" else "cpu"]
    return max(1, int(target / (chunk * q_mean * d_mean)))


def gather_padded(packed: PackedVectors, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Items (in the given order) as (n, L_max, D) and a (n, L_max) real-row mask.

    Padded slots repeat the item's first vector (not zeros): its similarities then duplicate a real
    row/column, which leaves the dynamic min..max unchanged with no masking pass.
    """
    sizes, starts = packed.sizes[items], packed.offsets[items]
    slots = torch.arange(int(sizes.max()))
    mask = slots[None, :] < sizes[:, None]
    rows = starts[:, None] + torch.where(mask, slots[None, :], 0)
    dev = packed.vectors.device
    return packed.vectors[rows.to(dev)], mask.to(dev)


@dataclass
class _DocBlock:
    start: int  # position in the size-sorted document order
    end: int
    slots: int  # padded nodes per document
    matrix_t: torch.Tensor  # (D, n_docs * slots rounded up to COLUMN_ALIGN), extra columns zero
    weights: torch.Tensor  # (n_docs, slots): 1 / N_d on real nodes, 0 on padding


class BlockScorer:
    """All query x document GMN scores of ``model`` (a GraphMatchingNetwork), block by block (see the
    module docstring)."""

    def __init__(self, model: nn.Module, queries: PackedVectors, docs: PackedVectors,
                 chunk_size: int, doc_block: int | None, profile: dict[str, float] | None) -> None:
        cfg = self.cfg = model.cfg
        if queries.vectors.shape[1] != docs.vectors.shape[1]:
            raise ValueError(f"query dim {queries.vectors.shape[1]} != document dim {docs.vectors.shape[1]}")
        self.model, self.device = model, queries.vectors.device
        self.queries, docs = queries.normalised(), docs.to(self.device).normalised()
        self.q_order = torch.argsort(queries.sizes, stable=True)
        self.d_order = torch.argsort(docs.sizes, stable=True)
        self.chunk = chunk_size
        q_max, d_max = int(queries.sizes.max()), int(docs.sizes.max())
        self.doc_block = doc_block or default_doc_block(chunk_size, float(queries.sizes.float().mean()),
                                                        float(docs.sizes.float().mean()), self.device)
        self.tick = stage_clock(profile, self.device)
        self.fixed = cfg.hist_range == "fixed"
        # fixed range: t = s * (cos + R) (- 0.5 for soft) = (s q) . d + offset: a GEMM onto a prefilled buffer
        self.scale = cfg.bins / (2 * FIXED_HALF_WIDTH)
        self.offset = self.scale * FIXED_HALF_WIDTH - (0.5 if cfg.soft_binning else 0.0)
        self.blocks = [self._doc_block(docs, s, min(s + self.doc_block, len(docs)))
                       for s in range(0, len(docs), self.doc_block)]
        # folded weights: hist @ W1^T + b1 == hist @ (W1^T + b1) as rows sum to 1; logits need W2^T q_att only
        lin1, lin2 = model.hist_mlp[0], model.hist_mlp[2]
        self.w1 = (lin1.weight.T + lin1.bias).contiguous()  # (bins, hidden)
        self.u = (lin2.weight.T @ model.q_att.T).contiguous()  # (hidden, heads)
        self.w1_t = self.w1.T.contiguous()  # (hidden, bins): the (out, in) layout of a linear weight
        self.fused_linear_relu = self.device.type == "cpu" and torch.backends.mkldnn.is_available()
        self._fold_pair_mlps(model)
        n_sim = min(chunk_size, len(queries)) * q_max * (min(self.doc_block, len(docs)) * d_max + COLUMN_ALIGN)
        n_rows = n_sim // d_max
        f32 = dict(dtype=torch.float32, device=self.device)
        self.buf_s, self.buf_h = torch.empty(n_sim, **f32), torch.empty(n_rows * cfg.bins, **f32)
        self.buf_i = torch.empty(n_sim, dtype=torch.int64, device=self.device)
        self.buf_r = torch.empty(n_rows * cfg.hidden, **f32)
        self.buf_t = torch.empty(n_rows * cfg.hidden if cfg.heads > 1 else 0, **f32)
        # pooled first-layer activations of a whole query chunk: the per-pair chain then runs once per chunk
        self.buf_p = torch.empty(min(chunk_size, len(queries)) * len(docs) * cfg.heads * cfg.hidden, **f32)

    def _fold_pair_mlps(self, model: nn.Module) -> None:
        """Per-pair chain with adjacent linear maps merged (exact): pooled r -> score in two GEMMs.

        h_k = W2 p_k + b2 (second eq.-3 layer, per head) feeds v_mlp's first layer; v_mlp's last layer
        feeds score_mlp's first layer: a1 = relu(M1 p + c1), z = relu(M2 a1 + m sim + c2), score = w z + b.
        """
        w2, b2 = model.hist_mlp[2].weight, model.hist_mlp[2].bias
        v1, v2, s1, s2 = model.v_mlp[0], model.v_mlp[2], model.score_mlp[0], model.score_mlp[2]
        hidden, heads = self.cfg.hidden, self.cfg.heads
        v1_heads = v1.weight.view(hidden, heads, hidden)  # (out, head, in)
        self.m1 = torch.einsum("okh,hi->kio", v1_heads, w2).reshape(heads * hidden, hidden).contiguous()
        self.c1 = v1.bias + torch.einsum("okh,h->o", v1_heads, b2)
        s1_v = s1.weight[:, :hidden]
        self.m2 = (s1_v @ v2.weight).T.contiguous()  # (hidden, hidden)
        self.c2 = s1.bias + s1_v @ v2.bias
        self.m_sim = s1.weight[:, hidden] if self.cfg.use_global else None
        self.w_out, self.b_out = s2.weight[0], s2.bias

    def _pair_scores(self, pooled: torch.Tensor, sim_vec: torch.Tensor | None) -> torch.Tensor:
        """pooled (P, heads * hidden) pooled first-layer activations -> scores (P,), eqs. 3 (2nd layer)-5."""
        a1 = torch.addmm(self.c1, pooled, self.m1).relu_()
        z = torch.addmm(self.c2, a1, self.m2)
        if self.m_sim is not None:
            z.addcmul_(sim_vec.reshape(-1, 1), self.m_sim)
        return torch.mv(z.relu_(), self.w_out).add_(self.b_out)

    def _linear_relu(self, hist: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """relu(hist @ w1): oneDNN's fused linear+ReLU on CPU where this torch has it (one pass fewer over
        the largest tensor of the block), else a GEMM into ``out`` and an in-place ReLU."""
        if self.fused_linear_relu:
            try:
                return torch.ops.mkldnn._linear_pointwise(hist, self.w1_t, None, "relu", [], "")
            except (RuntimeError, AttributeError):  # private op: fall back for good if it is missing or refuses
                self.fused_linear_relu = False
        return torch.mm(hist, self.w1, out=out).relu_()

    def _doc_block(self, docs: PackedVectors, start: int, end: int) -> _DocBlock:
        padded, mask = gather_padded(docs, self.d_order[start:end])
        n, slots, dim = padded.shape
        cols = -(-n * slots // COLUMN_ALIGN) * COLUMN_ALIGN
        matrix_t = padded.new_zeros((dim, cols))
        matrix_t[:, : n * slots] = padded.reshape(n * slots, dim).T
        weights = mask.float() / mask.sum(1, keepdim=True).float()
        return _DocBlock(start, end, slots, matrix_t, weights)

    def __call__(self, sim_vec: torch.Tensor | None) -> torch.Tensor:
        n_q, n_d = len(self.queries), len(self.d_order)
        if self.cfg.use_global:
            if sim_vec is None:
                raise ValueError("use_global (VG2VG) needs sim_vec (Q, N_docs), the global cosines")
            sim_vec = torch.as_tensor(sim_vec).to(self.device, torch.float32)
            if sim_vec.shape != (n_q, n_d):
                raise ValueError(f"sim_vec has shape {tuple(sim_vec.shape)}, expected {(n_q, n_d)}")
            sim_vec = sim_vec[self.q_order.to(self.device)][:, self.d_order.to(self.device)]
        out = torch.empty((n_q, n_d), device=self.device)
        for qs in range(0, n_q, self.chunk):
            qe = min(qs + self.chunk, n_q)
            q, qmask = gather_padded(self.queries, self.q_order[qs:qe])
            c, lq, dim = q.shape
            q_bias = None if bool(qmask.all()) else torch.zeros((c, lq), device=self.device).masked_fill_(
                ~qmask, float("-inf"))
            flat = q.reshape(c * lq, dim) * (self.scale if self.fixed else 1.0)
            pooled = self.buf_p[: c * n_d * self.cfg.heads * self.cfg.hidden].view(c, n_d, self.cfg.heads, -1)
            for blk in self.blocks:
                self._block(flat, c, lq, blk, q_bias, pooled[:, blk.start : blk.end])
            sv = None if sim_vec is None else sim_vec[qs:qe]
            out[qs:qe] = self._pair_scores(pooled.view(c * n_d, -1), sv).view(c, n_d)
            self.tick("mlp")
        q_order, d_order = self.q_order.to(self.device), self.d_order.to(self.device)
        result = torch.empty_like(out)
        result[q_order[:, None], d_order[None, :]] = out  # back to the callers' order
        return result

    def _block(self, qflat: torch.Tensor, c: int, lq: int, blk: _DocBlock, q_bias: torch.Tensor | None,
               pooled: torch.Tensor) -> None:
        """One query chunk x one document block: attention-pooled first-layer activations of every pair
        into ``pooled`` (c, nb, heads, hidden)."""
        cfg, nb, ld = self.cfg, blk.end - blk.start, blk.slots
        bins, hidden, rows = cfg.bins, cfg.hidden, c * lq * nb
        self.tick("other")
        cols = blk.matrix_t.shape[1]
        s = self.buf_s[: c * lq * cols].view(c * lq, cols)
        if self.fixed:  # beta=1 onto the offset: cheaper than an extra constant column (K = D + 1)
            s.fill_(self.offset).addmm_(qflat, blk.matrix_t)
        else:
            torch.mm(qflat, blk.matrix_t, out=s)
        s = s[:, : nb * ld].view(c, lq, nb, ld)  # drop the alignment columns (a strided view, no copy)
        self.tick("similarity")
        if not self.fixed:  # t = (S - min) * (bins - margin) / (max - min) per pair
            lo, hi = s.aminmax(dim=-1)
            lo, hi = lo.amin(1, keepdim=True), hi.amax(1, keepdim=True)  # (c, 1, nb)
            s.sub_(lo[..., None]).mul_(((bins - TOP_MARGIN) / (hi - lo).clamp_min(RANGE_EPS))[..., None])
            if cfg.soft_binning:
                s.sub_(0.5)
        idx = self.buf_i[: rows * ld].view(c, lq, nb, ld)
        hist = self.buf_h[: rows * bins].view(c, lq, nb, bins).zero_()
        w = blk.weights[None, None].expand(c, lq, nb, ld)
        if not cfg.soft_binning:
            idx.copy_(s)  # float -> int64 truncates; t >= 0 (up to rounding) so this is floor
            hist.scatter_add_(3, idx, w)
        else:  # (1 - f) w to bin k, f w to bin k + 1
            s.clamp_(0, bins - 1)
            idx.copy_(s).clamp_(max=bins - 2)
            frac_w = s.sub_(idx).mul_(w)
            hist.scatter_add_(3, idx, w).scatter_add_(3, idx, frac_w.neg_())
            hist.scatter_add_(3, idx.add_(1), frac_w.neg_())
        self.tick("histogram")
        r = self._linear_relu(hist.view(rows, bins), self.buf_r[: rows * hidden].view(rows, hidden))
        logits = (r @ self.u).view(c, lq, nb, cfg.heads)
        if q_bias is not None:
            logits += q_bias[:, :, None, None]
        alpha = logits.softmax(dim=1)  # over query nodes
        r4 = r.view(c, lq, nb, hidden)
        if cfg.heads == 1:
            torch.sum(r4.mul_(alpha), 1, out=pooled[:, :, 0])
        else:
            tmp = self.buf_t[: rows * hidden].view(c, lq, nb, hidden)
            for k in range(cfg.heads):
                torch.sum(torch.mul(r4, alpha[..., k : k + 1], out=tmp), 1, out=pooled[:, :, k])
        self.tick("mlp")
