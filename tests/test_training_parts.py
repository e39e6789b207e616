"""Tests for rsretrieval.training: losses (eqs. 6-7), contamination-free sampler, schedule, LR finder."""

from __future__ import annotations

import importlib.util
import math
import random

import pytest
import torch
from torch.utils.data import DataLoader

from rsretrieval.training.losses import info_nce, positive_mask, triplet
from rsretrieval.training.sampling import CaptionPerImageSampler
from rsretrieval.training.schedule import (
    Accumulator,
    accumulation_steps,
    cosine_scheduler,
    effective_batch_size,
    lr_at,
    lr_finder,
    save_plot,
)

HAS_MPL = importlib.util.find_spec("matplotlib") is not None


# ----------------------------------------------------------------------------- naive references
def naive_info_nce(scores, mask, tau):
    rows = []
    for i in range(scores.shape[0]):
        denom = sum(math.exp(float(s) / tau) for s in scores[i])
        pos = [j for j in range(scores.shape[1]) if mask[i, j]]
        rows.append(-sum(math.log(math.exp(float(scores[i, j]) / tau) / denom) for j in pos) / len(pos))
    return sum(rows) / len(rows)


def naive_triplet(scores, mask, margin, hardest):
    rows = []
    for i in range(scores.shape[0]):
        pos = [j for j in range(scores.shape[1]) if mask[i, j]]
        neg = [j for j in range(scores.shape[1]) if not mask[i, j]]
        if not pos or not neg:
            continue
        if hardest:
            n = max(neg, key=lambda j: float(scores[i, j]))
            vals = [max(0.0, margin - float(scores[i, p]) + float(scores[i, n])) for p in pos]
        else:
            vals = [max(0.0, margin - float(scores[i, p]) + float(scores[i, n])) for p in pos for n in neg]
        rows.append(sum(vals) / len(vals))
    return sum(rows) / len(rows)


def _scores(b=5, n=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, n, generator=g, dtype=torch.float64) * 2 - 1).requires_grad_(True)


# ----------------------------------------------------------------------------- losses
def test_info_nce_hand_computed():
    # 2x2: row 0 = [1, 0] positive 0; row 1 = [0, 1] positive 1; tau = 1
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    expected = -math.log(math.e / (math.e + 1))
    assert info_nce(s, torch.tensor([0, 1]), 1.0).item() == pytest.approx(expected, rel=1e-6)
    assert info_nce(s, torch.tensor([0, 1]), 1.0, symmetric=True).item() == pytest.approx(expected, rel=1e-6)
    # equal scores: loss = log N
    assert info_nce(torch.zeros(3, 4), torch.tensor([0, 1, 2]), 0.1).item() == pytest.approx(math.log(4))


def test_info_nce_matches_naive_and_cross_entropy():
    s = _scores()
    idx = torch.tensor([0, 3, 2, 6, 1])
    for tau in (1.0, 0.07):
        got = info_nce(s, idx, tau)
        assert got.item() == pytest.approx(naive_info_nce(s.detach(), positive_mask(s, idx), tau), rel=1e-9)
        assert torch.allclose(got, torch.nn.functional.cross_entropy(s / tau, idx))
    # temperature scaling: info_nce(s, tau) == info_nce(s / tau, 1)
    assert torch.allclose(info_nce(s, idx, 0.05), info_nce(s / 0.05, idx, 1.0))


def test_info_nce_multi_positive_and_symmetric():
    s = _scores(4, 6, seed=1)
    mask = torch.zeros(4, 6, dtype=torch.bool)
    mask[0, [0, 1]] = True  # e.g. two captions of the same image among the candidates
    mask[1, 2] = True
    mask[2, [3, 4, 5]] = True
    mask[3, 1] = True
    got = info_nce(s, mask, 0.5)
    assert got.item() == pytest.approx(naive_info_nce(s.detach(), mask, 0.5), rel=1e-9)
    # symmetric: columns with >= 1 positive query are the doc->query rows
    sym = info_nce(s, mask, 0.5, symmetric=True)
    cols = [j for j in range(6) if mask[:, j].any()]
    col = naive_info_nce(s.detach().t()[cols], mask.t()[cols], 0.5)
    assert sym.item() == pytest.approx(0.5 * (got.item() + col), rel=1e-9)
    sym.backward()
    assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0


def test_info_nce_square_symmetric_equals_transpose_average():
    s = _scores(5, 5, seed=2)
    idx = torch.arange(5)
    both = info_nce(s, idx, 0.1, symmetric=True)
    ref = 0.5 * (info_nce(s, idx, 0.1) + info_nce(s.t(), idx, 0.1))
    assert torch.allclose(both, ref)


def test_info_nce_large_scores_stable_and_errors():
    s = torch.tensor([[100.0, -100.0], [-100.0, 100.0]], requires_grad=True)
    loss = info_nce(s, torch.tensor([0, 1]), 0.01)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(s.grad).all()
    with pytest.raises(ValueError):
        info_nce(s, torch.tensor([0, 1]), 0.0)
    with pytest.raises(ValueError):
        info_nce(s, torch.zeros(2, 2, dtype=torch.bool), 0.1)
    with pytest.raises(ValueError):
        info_nce(s, torch.tensor([0, 2]), 0.1)


def test_triplet_hand_computed():
    s = torch.tensor([[0.9, 0.5, 0.1], [0.2, 0.3, 0.6]])
    idx = torch.tensor([0, 1])
    # row 0: negatives 0.5, 0.1 -> hinge(0.2-0.9+0.5)=0, hinge(0.2-0.9+0.1)=0 -> 0
    # row 1: negatives 0.2, 0.6 -> hinge(0.2-0.3+0.2)=0.1, hinge(0.2-0.3+0.6)=0.5 -> mean 0.3
    assert triplet(s, idx, 0.2).item() == pytest.approx((0.0 + 0.3) / 2)
    # hardest: row 0 -> 0.5 -> 0; row 1 -> 0.6 -> 0.5
    assert triplet(s, idx, 0.2, hardest=True).item() == pytest.approx(0.25)


@pytest.mark.parametrize("hardest", [False, True])
def test_triplet_matches_naive(hardest):
    s = _scores(5, 7, seed=3)
    mask = positive_mask(s, torch.tensor([0, 3, 2, 6, 1]))
    mask[0, 4] = True  # a second positive
    got = triplet(s, mask, 0.3, hardest=hardest)
    assert got.item() == pytest.approx(naive_triplet(s.detach(), mask, 0.3, hardest), rel=1e-9)
    sym = triplet(s, mask, 0.3, hardest=hardest, symmetric=True)
    ref = 0.5 * (got.item() + naive_triplet(s.detach().t(), mask.t(), 0.3, hardest))
    assert sym.item() == pytest.approx(ref, rel=1e-9)
    sym.backward()
    assert torch.isfinite(s.grad).all()


def test_triplet_no_negative_is_zero_with_graph():
    s = torch.rand(2, 1, requires_grad=True)
    loss = triplet(s, torch.tensor([0, 0]), 0.2)
    loss.backward()
    assert loss.item() == 0.0 and s.grad is not None


# ----------------------------------------------------------------------------- sampler
def _multi_caption_ids(n_images=23, seed=0):
    rng = random.Random(seed)
    ids = [f"img{i}" for i in range(n_images) for _ in range(rng.randint(1, 7))]
    rng.shuffle(ids)  # captions of an image need not be contiguous
    return ids


@pytest.mark.parametrize("batch_size,drop_last", [(4, False), (4, True), (5, False), (23, False), (50, True)])
def test_sampler_no_contamination_and_coverage(batch_size, drop_last):
    ids = _multi_caption_ids()
    sampler = CaptionPerImageSampler(ids, batch_size, seed=7, drop_last=drop_last)
    for epoch in range(5):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        for b in batches:
            assert len({ids[k] for k in b}) == len(b)  # no two captions of one image
            assert len(b) == batch_size or (not drop_last and b is batches[-1])
        seen = [ids[k] for b in batches for k in b]
        assert len(seen) == len(set(seen))  # each image at most once
        if not drop_last:
            assert set(seen) == set(ids)  # ... and exactly once


def test_sampler_len():
    ids = _multi_caption_ids()  # 23 images
    assert len(CaptionPerImageSampler(ids, 4)) == 6
    assert len(CaptionPerImageSampler(ids, 4, drop_last=True)) == 5
    assert len(CaptionPerImageSampler(ids, 50, drop_last=True)) == 0
    with pytest.raises(ValueError):
        CaptionPerImageSampler(ids, 0)


def test_sampler_deterministic_and_epochs_differ():
    ids = _multi_caption_ids()
    a, b = CaptionPerImageSampler(ids, 4, seed=3), CaptionPerImageSampler(ids, 4, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b) == list(a)  # repeatable per (seed, epoch)
    b.set_epoch(3)
    assert list(a) != list(b)
    # caption choice (not only order) changes across epochs
    picks = {frozenset(CaptionPerImageSampler(ids, 4, seed=3).epoch_captions(e)) for e in range(4)}
    assert len(picks) > 1
    assert CaptionPerImageSampler(ids, 4, seed=4).epoch_captions(2) != a.epoch_captions(2)


def test_sampler_with_dataloader():
    ids = _multi_caption_ids(n_images=10)
    sampler = CaptionPerImageSampler(ids, 3, seed=0)
    loader = DataLoader(list(range(len(ids))), batch_sampler=sampler)
    batches = [t.tolist() for t in loader]
    assert batches == list(sampler)
    assert len(loader) == 4


# ----------------------------------------------------------------------------- schedule
def test_lr_at_values():
    assert lr_at(0, 100, 1e-3, warmup_steps=10) == 0.0
    assert lr_at(5, 100, 1e-3, warmup_steps=10) == pytest.approx(5e-4)
    assert lr_at(10, 100, 1e-3, warmup_steps=10) == pytest.approx(1e-3)
    assert lr_at(55, 100, 1e-3, warmup_steps=10, min_lr=1e-5) == pytest.approx((1e-3 + 1e-5) / 2)
    assert lr_at(100, 100, 1e-3, warmup_steps=10, min_lr=1e-5) == pytest.approx(1e-5)
    assert lr_at(150, 100, 1e-3, min_lr=1e-5) == pytest.approx(1e-5)
    assert lr_at(0, 100, 1e-3) == pytest.approx(1e-3)
    lrs = [lr_at(s, 100, 1e-3, warmup_steps=10) for s in range(10, 101)]
    assert all(x >= y for x, y in zip(lrs, lrs[1:]))
    with pytest.raises(ValueError):
        lr_at(0, 10, 1e-3, warmup_steps=11)


def test_cosine_scheduler_matches_lr_at():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p], "lr": 0.1}, {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.01}])
    sched = cosine_scheduler(opt, total_steps=20, warmup_steps=4, min_lr=1e-3)
    for step in range(20):
        assert opt.param_groups[0]["lr"] == pytest.approx(lr_at(step, 20, 0.1, 4, 1e-3))
        assert opt.param_groups[1]["lr"] == pytest.approx(lr_at(step, 20, 0.01, 4, 1e-3))
        opt.step()
        sched.step()


def test_accumulation():
    assert accumulation_steps(256, 32) == 8
    assert accumulation_steps(256, 32, workers=2) == 4
    assert accumulation_steps(32, 32) == 1
    assert effective_batch_size(32, 8) == 256
    assert effective_batch_size(32, 4, workers=2) == 256
    with pytest.raises(ValueError, match="not a positive multiple"):
        accumulation_steps(100, 32)
    with pytest.raises(ValueError):
        accumulation_steps(16, 32)
    acc = Accumulator(3)
    assert [acc.tick(last=i == 7) for i in range(8)] == [False, False, True, False, False, True, False, True]
    assert acc.updates == 3 and acc.scale(torch.tensor(3.0)).item() == 1.0
    with pytest.raises(ValueError):
        Accumulator(0)


# ----------------------------------------------------------------------------- LR finder
def _regression_problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    y = x @ torch.randn(8, 1, generator=g) + 0.01 * torch.randn(256, 1, generator=g)
    batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32)]
    torch.manual_seed(0)
    return torch.nn.Linear(8, 1), batches


def test_lr_finder_linear_regression(tmp_path):
    model, batches = _regression_problem()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng_before = torch.get_rng_state()

    def loss_fn(batch):
        xb, yb = batch
        return torch.nn.functional.mse_loss(model(xb), yb)

    res = lr_finder(model, loss_fn, batches, lambda ps: torch.optim.SGD(ps, lr=1.0),
                    min_lr=1e-6, max_lr=10.0, steps=80)
    assert 1e-4 <= res.steepest_lr <= 1.0
    assert len(res.lrs) == len(res.losses) == len(res.raw_losses) <= 80
    assert res.diverged  # SGD on this problem blows up well before lr = 10
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(rng_before, torch.get_rng_state())

    out = save_plot(res, tmp_path / "lr.png")
    assert out.exists() and out.stat().st_size > 0
    if HAS_MPL:
        assert out.suffix == ".png" and out.read_bytes()[:4] == b"\x89PNG"


def test_lr_finder_restores_given_optimizer():
    model, batches = _regression_problem()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    state = opt.state_dict()
    res = lr_finder(model, lambda b: torch.nn.functional.mse_loss(model(b[0]), b[1]), iter(batches), opt,
                    min_lr=1e-5, max_lr=1e-1, steps=20)
    assert len(res.lrs) == 8  # a one-shot iterator ends the test early
    assert opt.state_dict()["state"] == {} == state["state"]
    assert opt.param_groups[0]["lr"] == 1e-3


def test_save_plot_csv_fallback(tmp_path, monkeypatch):
    import builtins

    from rsretrieval.training.lr_finder import LRFinderResult

    real_import = builtins.__import__

    def no_mpl(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mpl)
    res = LRFinderResult([1e-3, 1e-2], [1.0, 0.5], 1e-3, [1.0, 0.4], False)
    with pytest.warns(UserWarning, match="matplotlib"):
        out = save_plot(res, tmp_path / "lr.png")
    assert out.suffix == ".csv"
    assert out.read_text().splitlines()[0] == "lr,loss,raw_loss"
