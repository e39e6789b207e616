"""The findings table: paired bootstrap per claim, verdicts, image pairing, not-tested rows, summaries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from rsretrieval.evaluation.findings import (CLAIMS, COLUMNS, diff_stats, compute_findings, findings_console,
                                             findings_html, read_findings, write_findings)
from rsretrieval.evaluation.metrics import RankResult
from rsretrieval.evaluation.retrieval import write_per_query
from rsretrieval.pipelines.benchmark.cells import per_query_name

KS = (1, 5, 10)
N_IMAGES = 200


class Run:
    """Tiny run: results rows plus per-query Parquet files written like ``record_cell`` writes them."""

    def __init__(self, tmp: Path) -> None:
        self.dir = tmp / "per_query"
        self.dir.mkdir()
        self.rows: list[dict[str, Any]] = []

    def cell(self, ranks: Any, mode: str = "v2v", variant: str = "fine_grained", backbone: str = "bb",
             dataset: str = "ds", gold: Any = None, crops: str = "-", graphs: str = "-", similarity: str | None = None,
             training: str | None = None) -> dict[str, Any]:
        ranks = np.asarray(ranks, np.int64)
        gold = np.arange(len(ranks)) if gold is None else np.asarray(gold)
        keys = {"dataset": dataset, "variant": variant, "backbone": backbone, "mode": mode, "crops": crops,
                "graphs": graphs, "similarity": similarity or ("cosine" if mode == "v2v" else "max-mean"),
                "training": training or "none"}
        qids = [f"{variant}:q{i}" for i in range(len(ranks))]
        image_ids = [f"img{i}" for i in range(N_IMAGES)]
        top = np.zeros((len(ranks), 2), np.int64)
        write_per_query(self.dir / f"{per_query_name(keys)}.parquet", qids, gold, image_ids,
                        RankResult(ranks, top, np.zeros((len(ranks), 2), np.float32)), keys)
        rec = {f"R@{k}": 100.0 * (ranks <= k).mean() for k in KS}
        row = {**keys, **rec, "mR": float(np.mean(list(rec.values()))), "n_queries": len(ranks)}
        self.rows.append(row)
        return row

    def findings(self, **kw: Any) -> pd.DataFrame:
        return compute_findings(pd.DataFrame(self.rows), self.dir, **kw)


def _rows(f: pd.DataFrame, claim: str) -> pd.DataFrame:
    return f[f["claim_id"] == claim].reset_index(drop=True)


def test_findings_import_no_torch() -> None:
    import subprocess
    import sys

    code = "import sys, rsretrieval.evaluation.findings; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_bootstrap_ci_and_p_match_a_naive_loop(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    ra, rb = rng.integers(1, 15, size=40), rng.integers(1, 20, size=40)
    run = Run(tmp_path)
    base, scene = run.cell(rb), run.cell(ra, mode="s2s", crops="uniform")
    f = _rows(run.findings(n_resamples=500, seed=7, confidence=0.9), "scene_vs_v2v")
    assert len(f) == 1
    r = f.iloc[0]
    score = lambda ranks: 100.0 * np.mean([ranks <= k for k in KS], axis=0)  # noqa: E731
    d = score(ra) - score(rb)
    draws = np.random.default_rng(7)
    boot = np.array([d[draws.integers(0, len(d), size=len(d))].mean() for _ in range(500)])
    assert r["n"] == 40 and r["expected"] == "a > b" and r["a"] == "S2S (uniform)" and r["b"] == "V2V"
    assert r["mR_a"] == pytest.approx(scene["mR"]) and r["mR_b"] == pytest.approx(base["mR"])
    assert r["diff"] == pytest.approx(d.mean())
    assert r["ci_low"] == pytest.approx(np.quantile(boot, 0.05))
    assert r["ci_high"] == pytest.approx(np.quantile(boot, 0.95))
    assert r["p"] == pytest.approx((1 + (boot <= 0).sum()) / 501)
    assert list(run.findings().columns) == COLUMNS


def test_verdicts_holds_fails_inconclusive(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(3, 30, size=60)
    run = Run(tmp_path)
    run.cell(base)
    run.cell(np.ones(60, np.int64), mode="s2s", crops="uniform")  # clearly better
    run.cell(base + 20, mode="v2s", crops="uniform")  # clearly worse
    run.cell(base, mode="s2v")  # identical
    f = _rows(run.findings(), "scene_vs_v2v").set_index("a")
    assert f.loc["S2S (uniform)", "verdict"] == "holds" and f.loc["S2S (uniform)", "ci_low"] > 0
    assert f.loc["V2S (uniform)", "verdict"] == "fails" and f.loc["V2S (uniform)", "ci_high"] < 0
    assert f.loc["S2V", "verdict"] == "inconclusive" and f.loc["S2V", "diff"] == 0
    assert f.loc["S2V", "p"] == 1.0 and f.loc["S2S (uniform)", "p"] < 0.01
    # fine-grained: the scene claim is a target for the modes with image crops; S2V has none
    assert f["target"].to_dict() == {"S2S (uniform)": True, "V2S (uniform)": True, "S2V": False}


def test_float_noise_decides_no_verdict() -> None:
    noise = np.full(20, 0.1 + 0.2 - 0.3)  # 5.6e-17, a true 0
    lo, hi, p = diff_stats(noise, 0.95, 200, 0)
    assert lo == hi == 0 and p == 1.0


def test_fine_grained_vs_original_pairs_by_gold_image(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n_img = 12
    orig_gold = np.repeat(np.arange(n_img), 5)  # 5 original captions per image
    orig = rng.integers(1, 30, size=len(orig_gold))
    fg = rng.integers(1, 8, size=n_img)  # one fine-grained caption per image
    run = Run(tmp_path)
    run.cell(orig, variant="original", gold=orig_gold)
    run.cell(fg, variant="fine_grained")
    r = _rows(run.findings(), "fg_vs_original_v2v").iloc[0]
    score = lambda ranks: 100.0 * np.mean([ranks <= k for k in KS], axis=0)  # noqa: E731
    per_image = score(orig).reshape(n_img, 5).mean(axis=1)
    assert r["n"] == n_img and r["variant"] == "fine_grained vs original" and r["target"]
    assert r["mR_a"] == pytest.approx(score(fg).mean()) and r["mR_b"] == pytest.approx(per_image.mean())
    assert r["diff"] == pytest.approx((score(fg) - per_image).mean())
    assert r["a"] == "V2V (fine_grained)" and r["b"] == "V2V (original)"
    # the scene claim is tested on original too, but is no target there
    run.cell(orig, mode="s2v", variant="original", gold=orig_gold)
    s = _rows(run.findings(), "scene_vs_v2v").iloc[0]
    assert s["variant"] == "original" and not s["target"] and s["n"] == len(orig)


def test_claims_the_run_cannot_test_get_a_reason(tmp_path: Path) -> None:
    run = Run(tmp_path)
    run.cell(np.arange(1, 11))
    f = run.findings()
    assert list(f["claim_id"]) == list(CLAIMS) and (f["verdict"] == "not tested").all() and not f["target"].any()
    why = dict(zip(f["claim_id"], f["reason"]))
    assert why["fg_vs_original_v2v"] == "one caption variant only (fine_grained)"
    assert why["scene_vs_v2v"] == "scene modes (v2s, s2v, s2s) off"
    assert why["gmn_vs_hungarian"] == why["trained_vs_vanilla"] == "graph modes (g2g, vg2vg) off"
    assert why["vg2vg_vs_v2v"] == "VG2VG mode off" and why["g2g_vs_v2v"] == "G2G mode off"
    # graph cells without trained embeddings, GMN or oracle graphs
    run.cell(np.arange(1, 11), mode="g2g", backbone="minilm", graphs="simulated-vlm", similarity="hungarian",
             training="vanilla")
    why = dict(zip((g := run.findings())["claim_id"], g["reason"]))
    assert why["trained_vs_vanilla"] == "no trained cells (graph training off)"
    assert why["gmn_vs_hungarian"] == "no GMN cells" and why["oracle_vs_generated"] == "no oracle image graphs"
    assert (g.loc[g["claim_id"] == "g2g_vs_v2v", "verdict"] != "not tested").all()


def test_untrained_cells_are_skipped(tmp_path: Path) -> None:
    run = Run(tmp_path)
    run.cell(np.arange(1, 21))
    g = dict(mode="g2g", backbone="minilm", graphs="oracle", training="vanilla")
    run.cell(np.arange(1, 21), **{**g, "similarity": "hungarian"})
    run.cell(np.ones(20, np.int64), **{**g, "similarity": "gmn", "training": "untrained"})
    f = run.findings()
    for side in ("a", "b"):
        assert not f[side].fillna("").str.contains("untrained").any()
    assert _rows(f, "gmn_vs_hungarian").iloc[0]["reason"] == "no GMN cells"


def test_graph_claims_directions_and_targets(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    base = rng.integers(2, 20, size=50)
    run = Run(tmp_path)
    for bb in ("bbA", "bbB"):
        run.cell(base, backbone=bb)
    for sim in ("hungarian", "gmn"):
        for training in ("vanilla", "trained"):
            for graphs in ("oracle", "simulated-vlm"):
                gain = (sim == "gmn") + (training == "trained") + (graphs == "oracle")
                g = dict(graphs=graphs, similarity=sim, training=training)
                run.cell(np.maximum(base - 3 * gain, 1), mode="vg2vg", backbone="bbA", **g)
                run.cell(base + 5, mode="g2g", backbone="minilm", **g)
    f = run.findings()
    assert set(f["claim_id"]) == set(CLAIMS)
    vg = _rows(f, "vg2vg_vs_v2v")
    assert len(vg) == 8 and (vg["backbone"] == "bbA").all()
    hv = vg[vg["a"] == "V2V"]  # V2V expected ahead of VG2VG Hungarian vanilla
    assert len(hv) == 2 and hv["b"].str.startswith("VG2VG Hungarian vanilla").all() and not hv["target"].any()
    assert vg.loc[vg["a"].str.contains("GMN"), "target"].all() and vg["target"].sum() == 4
    g2g = _rows(f, "g2g_vs_v2v")  # vanilla G2G x every V2V backbone, V2V as a
    assert len(g2g) == 4 * 2 and (g2g["a"] == "V2V").all() and not g2g["target"].any()
    assert set(g2g["backbone"]) == {"bbA", "bbB"} and g2g["b"].str.endswith("[minilm]").all()
    assert (g2g["verdict"] == "holds").all()
    for claim, n in (("gmn_vs_hungarian", 8), ("trained_vs_vanilla", 8), ("oracle_vs_generated", 8)):
        rows = _rows(f, claim)
        assert len(rows) == n and rows["target"].all()
        strict = rows[rows["a"].str.startswith("VG2VG")]
        assert (strict["verdict"] == "holds").all() and (strict["diff"] > 0).all()
    assert _rows(f, "oracle_vs_generated")["a"].str.contains(r"\(oracle\)").all()


def test_console_markdown_and_html(tmp_path: Path) -> None:
    run = Run(tmp_path)
    base = np.random.default_rng(4).integers(2, 20, size=30)
    run.cell(base)
    run.cell(base + 10, mode="s2s", crops="uniform")  # a target that fails
    f = run.findings()
    text = findings_console(f)
    assert all(c in text for c in CLAIMS) and "not tested: graph modes" in text
    assert "Target rows that did not hold (1)" in text and "fails" in text and "S2S (uniform)" in text
    assert "targets 0 holds / 1 fails / 0 inconclusive" in text
    path = write_findings(f, tmp_path)
    back = read_findings(path)
    assert list(back.columns) == COLUMNS and len(back) == len(f)
    pd.testing.assert_frame_equal(back, f)
    assert "| scene_vs_v2v |" in (tmp_path / "findings.md").read_text()
    page = findings_html(back)  # the report reads findings.csv back
    assert "<h2>Findings" in page and "#f8d7da" in page and page.count("<tr>") == len(f) + 1 + len(CLAIMS) + 1
    assert findings_console(pd.read_csv(path)) == text
