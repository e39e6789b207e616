"""Does each claim of the thesis hold in this run? One row per testable comparison (findings table).

Built after a run from ``results.csv`` and the per-query ranks (``per_query/<name>.parquet``), without
rescoring. Every row compares two cells, ``a`` (the cell the thesis found better) and ``b``, on the
same queries: a query's score is the mean over the run's K (those of 1, 5, 10 with an ``R@K`` column in
the results) of 100 * [rank <= K], so the mean score is the cell's mR. ``diff`` = mR_a - mR_b in points
with a paired percentile bootstrap CI; ``verdict`` is ``holds`` (CI above 0), ``fails`` (CI below 0) or
``inconclusive``. The claims (sections / tables of the thesis):

1. ``fg_vs_original_v2v``: V2V on fine-grained captions beats V2V on original captions (sec. 6.3,
   Table 7). The variants have different queries, so the pairs are gold images: per image, the mean
   score of its captions in each variant; the bootstrap resamples images.
2. ``scene_vs_v2v``: every scene cell (V2S / S2S per crops, S2V) beats V2V (sec. 6.5, Table 11).
3. ``gmn_vs_hungarian``: GMN beats Hungarian, all else equal (secs. 6.4.1, 6.4.3).
4. ``trained_vs_vanilla``: trained node embeddings beat vanilla ones (Tables 8-10).
5. ``vg2vg_vs_v2v``: VG2VG beats V2V (Table 10); for VG2VG Hungarian vanilla the thesis found V2V
   ahead (6.67% above baseline), so there ``a`` is V2V.
6. ``g2g_vs_v2v``: vanilla G2G trails V2V (Tables 8-9; ``a`` is V2V): G2G rows carry the node embedder
   as backbone and are paired with the V2V cell of every image backbone.
7. ``oracle_vs_generated``: oracle image graphs beat generated ones (sec. 6.4.2).

``target`` marks the rows the embedded synthetic dataset is built to show: claim 1; claims 2-5 and 7 on
fine-grained captions (claim 2 for the modes with image crops, V2S and S2S: synthrs' small objects vanish
in the whole 64 px image and come back in crops, and nothing in it makes a caption's clauses match a
whole image better than the caption does, so S2V is reported but no target; claim 5 for GMN only). synthrs' original-style captions repeat across images by
design (a ranker can reach ~4.5% R@1 on the default test split), so they carry almost no instance detail
for any method to use; claim 6 depends on real VLM graphs and is never a target.
A claim the run cannot test gets one ``not tested`` row with the reason. ``untrained`` cells (a seeded
untrained GMN) are no result and are skipped. No correction for multiple comparisons is applied.
"""

from __future__ import annotations

import html
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from rsretrieval.evaluation.cell_names import per_query_name
from rsretrieval.evaluation.cost import cell_label
from rsretrieval.evaluation.tables import markdown_table
from rsretrieval.evaluation.uncertainty import bootstrap_means

CLAIMS: dict[str, tuple[str, str]] = {
    "fg_vs_original_v2v": ("V2V on fine-grained captions beats V2V on original captions", "sec. 6.3, Table 7"),
    "scene_vs_v2v": ("scene-based matching (V2S, S2V, S2S) beats V2V", "sec. 6.5, Table 11"),
    "gmn_vs_hungarian": ("GMN beats Hungarian matching", "secs. 6.4.1, 6.4.3, Tables 8-10"),
    "trained_vs_vanilla": ("trained node embeddings beat vanilla ones", "Tables 8-10"),
    "vg2vg_vs_v2v": ("VG2VG beats V2V (but V2V beats VG2VG Hungarian vanilla)", "Table 10"),
    "g2g_vs_v2v": ("vanilla G2G trails V2V (generated image graphs are poor)", "Tables 8-9, sec. 6.4.2"),
    "oracle_vs_generated": ("oracle image graphs beat generated ones", "sec. 6.4.2"),
}
COLUMNS = ["claim_id", "claim", "thesis", "dataset", "variant", "backbone", "a", "b", "expected", "mR_a", "mR_b",
           "diff", "ci_low", "ci_high", "p", "n", "verdict", "target", "reason"]
VERDICTS = ("holds", "fails", "inconclusive", "not tested")
SCENE_MODES = ("v2s", "s2v", "s2s")
GRAPH_MODES = ("g2g", "vg2vg")
FG, ORIG = "fine_grained", "original"
DECIMALS = 9  # bootstrap means and diffs (points) are rounded to this many decimals
Row = dict[str, Any]


def run_ks(results: pd.DataFrame) -> list[int]:
    """The K of a query's score: those of 1, 5, 10 with an ``R@K`` column, else every ``R@K`` column."""
    all_ks = sorted(int(c[2:]) for c in results.columns if c.startswith("R@") and c[2:].isdigit())
    return [k for k in (1, 5, 10) if k in all_ks] or all_ks or [1, 5, 10]


@dataclass
class _Pair:
    """One comparison: cell ``a`` expected to beat cell ``b``."""

    claim_id: str
    a: Row
    b: Row
    backbone: str
    target: bool
    variant: str | None = None  # None: the cells' variant
    a_label: str | None = None
    b_label: str | None = None


def _label(row: Row) -> str:
    return cell_label(row) + (f" [{row['backbone']}]" if row["mode"] == "g2g" else "")


def _pairs(rows: list[Row]) -> tuple[list[_Pair], dict[str, str]]:
    """Every testable comparison of the run, and the reason for each claim that has none."""
    by_mode: dict[str, list[Row]] = {}
    for r in rows:
        by_mode.setdefault(r["mode"], []).append(r)
    v2v = {(r["dataset"], r["variant"], r["backbone"]): r for r in by_mode.get("v2v", [])}
    graph = [r for m in GRAPH_MODES for r in by_mode.get(m, [])]
    variants = sorted({r["variant"] for r in rows})
    pairs: list[_Pair] = []
    why: dict[str, str] = {}

    # 1: fine-grained vs original V2V, per dataset x backbone
    for (ds, var, bb), r in v2v.items():
        if var == FG and (ds, ORIG, bb) in v2v:
            pairs.append(_Pair("fg_vs_original_v2v", r, v2v[(ds, ORIG, bb)], bb, True, f"{FG} vs {ORIG}",
                               f"V2V ({FG})", f"V2V ({ORIG})"))
    why["fg_vs_original_v2v"] = ("V2V mode off" if not v2v else f"one caption variant only ({', '.join(variants)})"
                                 if not {FG, ORIG} <= set(variants) else "no V2V cell on both variants")
    # 2: scene modes vs V2V
    scene = [r for m in SCENE_MODES for r in by_mode.get(m, [])]
    for r in scene:
        if (base := v2v.get((r["dataset"], r["variant"], r["backbone"]))) is not None:
            # S2V has no image crops, so synthrs' built-in mechanism (small objects come back in crops) cannot reach it
            pairs.append(_Pair("scene_vs_v2v", r, base, r["backbone"], r["variant"] == FG and r["mode"] != "s2v"))
    why["scene_vs_v2v"] = ("scene modes (v2s, s2v, s2s) off" if not scene else "V2V mode off" if not v2v
                           else "no V2V cell for the scene cells")

    # 3, 4, 7: graph cells that differ in one key
    def contrast(claim: str, key: str, better: str, worse: Any) -> None:
        rest = ["mode", "dataset", "variant", "backbone", "graphs", "similarity", "training"]
        rest.remove(key)
        index = {tuple(r[k] for k in rest): [] for r in graph}
        for r in graph:
            index[tuple(r[k] for k in rest)].append(r)
        for r in graph:
            if r[key] == better:
                for o in index[tuple(r[k] for k in rest)]:
                    if o is not r and worse(o[key]):
                        pairs.append(_Pair(claim, r, o, r["backbone"], r["variant"] == FG))

    contrast("gmn_vs_hungarian", "similarity", "gmn", lambda v: v == "hungarian")
    sims = {r["similarity"] for r in graph}
    why["gmn_vs_hungarian"] = ("graph modes (g2g, vg2vg) off" if not graph else "no GMN cells" if "gmn" not in sims
                               else "no Hungarian cells" if "hungarian" not in sims else "no GMN/Hungarian cell pair")
    contrast("trained_vs_vanilla", "training", "trained", lambda v: v == "vanilla")
    trainings = {r["training"] for r in graph}
    why["trained_vs_vanilla"] = ("graph modes (g2g, vg2vg) off" if not graph else "no trained cells (graph training "
                                 "off)" if "trained" not in trainings else "no vanilla cells" if "vanilla" not in
                                 trainings else "no trained/vanilla cell pair")
    contrast("oracle_vs_generated", "graphs", "oracle", lambda v: v not in ("oracle", "-"))
    sources = {r["graphs"] for r in graph}
    why["oracle_vs_generated"] = ("graph modes (g2g, vg2vg) off" if not graph else "no oracle image graphs"
                                  if "oracle" not in sources else "no generated image graphs" if sources == {"oracle"}
                                  else "no oracle/generated cell pair")
    # 5: VG2VG vs V2V (V2V expected ahead of VG2VG Hungarian vanilla)
    vg = by_mode.get("vg2vg", [])
    for r in vg:
        if (base := v2v.get((r["dataset"], r["variant"], r["backbone"]))) is not None:
            v2v_ahead = r["similarity"] == "hungarian" and r["training"] == "vanilla"
            a, b = (base, r) if v2v_ahead else (r, base)
            pairs.append(_Pair("vg2vg_vs_v2v", a, b, r["backbone"], r["variant"] == FG and r["similarity"] == "gmn"))
    why["vg2vg_vs_v2v"] = "VG2VG mode off" if not vg else "V2V mode off" if not v2v else "no V2V cell for VG2VG"
    # 6: vanilla G2G vs V2V of every image backbone
    g2g = [r for r in by_mode.get("g2g", []) if r["training"] == "vanilla"]
    for r in g2g:
        for (ds, var, bb), base in v2v.items():
            if ds == r["dataset"] and var == r["variant"]:
                pairs.append(_Pair("g2g_vs_v2v", base, r, bb, False))
    why["g2g_vs_v2v"] = ("G2G mode off" if not by_mode.get("g2g") else "no vanilla G2G cells" if not g2g
                         else "V2V mode off" if not v2v else "no V2V cell for G2G")
    return pairs, why


def diff_stats(d: np.ndarray, confidence: float, n_resamples: int, seed: int) -> tuple[float, float, float]:
    """Percentile bootstrap CI of mean(d) and the one-sided p of mean(d) <= 0 (+1 corrected). Means are
    rounded to :data:`DECIMALS` so that float noise (-3e-16 for a true 0) decides no verdict."""
    boot = np.round(bootstrap_means(d, n_resamples, seed), DECIMALS)
    alpha = (1.0 - confidence) / 2
    lo, hi = np.quantile(boot, [alpha, 1.0 - alpha])
    return float(lo), float(hi), float((1 + (boot <= 0).sum()) / (1 + n_resamples))


def verdict(ci_low: float, ci_high: float) -> str:
    """'holds' when the CI of the difference is above 0, 'fails' when below, else 'inconclusive'."""
    return "holds" if ci_low > 0 else "fails" if ci_high < 0 else "inconclusive"


class _Scores:
    """Per-query scores of a cell (query_id index; gold_image_id, score), the ``keep`` most recently used
    kept: comparisons come in runs over the same cells, and at corpus size every cell's scores at once
    would be GBs."""

    def __init__(self, per_query_dir: Path, ks: list[int], keep: int = 6) -> None:
        self.dir, self.ks, self.keep = Path(per_query_dir), np.asarray(ks), keep
        self._cache: OrderedDict[str, pd.DataFrame | None] = OrderedDict()

    def __call__(self, row: Row) -> pd.DataFrame | None:
        stem = per_query_name(row)
        if stem in self._cache:
            self._cache.move_to_end(stem)
            return self._cache[stem]
        path = self.dir / f"{stem}.parquet"
        scores = None
        if path.is_file():
            t = pq.read_table(path, columns=["query_id", "gold_image_id", "rank"]).to_pandas()
            score = 100.0 * (t["rank"].to_numpy()[:, None] <= self.ks[None, :]).mean(axis=1)
            scores = pd.DataFrame({"gold_image_id": t["gold_image_id"].to_numpy(), "score": score},
                                  index=t["query_id"].to_numpy())
        self._cache[stem] = scores
        while len(self._cache) > self.keep:
            self._cache.popitem(last=False)
        return scores


def _paired(sa: pd.DataFrame, sb: pd.DataFrame, by_image: bool) -> tuple[np.ndarray, np.ndarray]:
    """Aligned scores of a and b: per shared query, or per shared gold image (mean over its queries)."""
    if by_image:
        sa, sb = (s.groupby("gold_image_id", sort=True)["score"].mean().to_frame() for s in (sa, sb))
    common = sa.index.intersection(sb.index)
    return sa.loc[common, "score"].to_numpy(np.float64), sb.loc[common, "score"].to_numpy(np.float64)


def _evaluate(p: _Pair, scores: _Scores, confidence: float, n_resamples: int, seed: int) -> Row:
    claim, thesis = CLAIMS[p.claim_id]
    out: Row = {"claim_id": p.claim_id, "claim": claim, "thesis": thesis, "dataset": p.a["dataset"],
                "variant": p.variant or p.a["variant"], "backbone": p.backbone, "a": p.a_label or _label(p.a),
                "b": p.b_label or _label(p.b), "expected": "a > b", "target": p.target, "reason": ""}
    sa, sb = scores(p.a), scores(p.b)
    if sa is None or sb is None:
        missing = ", ".join(per_query_name(r) for r, s in ((p.a, sa), (p.b, sb)) if s is None)
        return {**out, "verdict": "not tested", "target": False, "reason": f"no per-query ranks: {missing}"}
    a, b = _paired(sa, sb, by_image=p.claim_id == "fg_vs_original_v2v")
    if len(a) == 0:
        return {**out, "verdict": "not tested", "target": False, "reason": "no shared queries"}
    lo, hi, pval = diff_stats(a - b, confidence, n_resamples, seed)
    return {**out, "mR_a": float(a.mean()), "mR_b": float(b.mean()), "diff": round(float((a - b).mean()), DECIMALS),
            "ci_low": lo, "ci_high": hi, "p": pval, "n": len(a), "verdict": verdict(lo, hi)}


def compute_findings(results: pd.DataFrame, per_query_dir: Path, confidence: float = 0.95, n_resamples: int = 1000,
                     seed: int = 0) -> pd.DataFrame:
    """The findings table (columns :data:`COLUMNS`) of a run's results and per-query folder.

    One row per comparison, claims in :data:`CLAIMS` order; a claim without any comparison gets one
    ``not tested`` row with the reason. mR_a / mR_b / diff are means over the paired units (queries;
    gold images for claim 1), the CI a percentile bootstrap of the paired difference at ``confidence``,
    p the share of bootstrap draws <= 0 (+1 corrected)."""
    if n_resamples < 1:
        raise ValueError("compute_findings needs n_resamples >= 1")
    rows = [r for r in results.to_dict("records") if r.get("training") != "untrained"]
    pairs, why = _pairs(rows)
    scores = _Scores(per_query_dir, run_ks(results))
    out = []
    for claim_id, (claim, thesis) in CLAIMS.items():
        found = [_evaluate(p, scores, confidence, n_resamples, seed) for p in pairs if p.claim_id == claim_id]
        found.sort(key=lambda r: (r["dataset"], r["variant"], r["backbone"], r["a"], r["b"]))
        out += found or [{"claim_id": claim_id, "claim": claim, "thesis": thesis, "expected": "a > b",
                          "verdict": "not tested", "target": False, "reason": why[claim_id]}]
    df = pd.DataFrame(out).reindex(columns=COLUMNS)
    df["target"] = df["target"].astype(bool)
    df["reason"] = df["reason"].fillna("")
    df["n"] = df["n"].astype("Int64")
    return df


def _counts(df: pd.DataFrame) -> str:
    return " / ".join(f"{(df['verdict'] == v).sum()} {v}" for v in VERDICTS[:3])


def claim_summary(findings: pd.DataFrame) -> Iterator[tuple[str, str, str]]:
    """(claim id, thesis reference, summary text) per claim, in table order."""
    for claim_id, g in findings.groupby("claim_id", sort=False):
        tested = g[g["verdict"] != "not tested"]
        if tested.empty:
            text = f"not tested: {g['reason'].iloc[0]}"
        else:
            tg = tested[tested["target"]]
            text = (f"targets {_counts(tg)}; " if len(tg) else "no target rows; ") + f"all {_counts(tested)}"
        yield str(claim_id), str(g["thesis"].iloc[0]), text


def _show(df: pd.DataFrame) -> pd.DataFrame:
    """Display copy: the CI as '[lo, hi]', p with three decimals, target as yes / no."""
    df = df.copy()
    df["CI"] = [f"[{lo:+.2f}, {hi:+.2f}]" if lo == lo else "-" for lo, hi in zip(df["ci_low"], df["ci_high"])]
    df["p"] = [f"{p:.3f}" if p == p else "-" for p in df["p"]]
    df["diff"] = [f"{d:+.2f}" if d == d else "-" for d in df["diff"]]
    df["n"] = ["-" if pd.isna(n) else str(int(n)) for n in df["n"]]
    df["target"] = df["target"].map({True: "yes", False: "no"})
    return df.fillna("-")


SHOW = ["claim_id", "dataset", "variant", "backbone", "a", "b", "mR_a", "mR_b", "diff", "CI", "p", "n", "verdict",
        "target", "reason"]


def write_findings(findings: pd.DataFrame, run_dir: Path) -> Path:
    """Write ``findings.csv`` and ``findings.md`` (a readable table) into ``run_dir``; return the CSV path."""
    run_dir = Path(run_dir)
    path = run_dir / "findings.csv"
    findings.to_csv(path, index=False)
    lines = ["# Findings: does each claim of the thesis hold in this run?", "",
             "a: the cell the thesis found better; diff = mR_a - mR_b (points) with a paired percentile bootstrap "
             "CI over queries (gold images for fg_vs_original_v2v); holds: CI above 0, fails: CI below 0; target: "
             "a row the synthetic dataset is built to show. No multiple-comparison correction.", "",
             "| claim | thesis | summary |", "|---|---|---|"]
    lines += [f"| {c} | {t} | {s} |" for c, t, s in claim_summary(findings)]
    lines += ["", *markdown_table(_show(findings), SHOW), ""]
    (run_dir / "findings.md").write_text("\n".join(lines), encoding="utf-8")
    return path


def read_findings(path: Path) -> pd.DataFrame:
    """A ``findings.csv`` read back with the dtypes of :func:`compute_findings` (n as Int64, empty reasons)."""
    df = pd.read_csv(path)
    df["reason"] = df["reason"].fillna("")
    df["n"] = df["n"].astype("Int64")
    df["target"] = df["target"].astype(bool)
    return df


def findings_console(findings: pd.DataFrame, max_rows: int = 10) -> str:
    """Terminal summary: one line per claim (verdict counts), then the target rows that did not hold."""
    lines = ["Findings (does each thesis claim hold? holds / fails / inconclusive: CI of diff > 0 / < 0 / else):"]
    width = max(len(c) for c in findings["claim_id"])
    lines += [f"  {c:<{width}}  {s}  ({t})" for c, t, s in claim_summary(findings)]
    bad = findings[findings["target"] & findings["verdict"].isin(["fails", "inconclusive"])]
    bad = bad.sort_values("verdict", key=lambda v: v.map({"fails": 0, "inconclusive": 1}), kind="stable")
    if len(bad):
        lines.append(f"Target rows that did not hold ({len(bad)}):")
        for r in bad.head(max_rows).to_dict("records"):
            lines.append(f"  {r['verdict']:<12} {r['claim_id']} {r['dataset']}/{r['variant']}/{r['backbone']}: "
                         f"{r['a']} {r['mR_a']:.2f} vs {r['b']} {r['mR_b']:.2f} (diff {r['diff']:+.2f}, "
                         f"CI [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}], n={int(r['n'])})")
        if len(bad) > max_rows:
            lines.append(f"  ... {len(bad) - max_rows} more in findings.md")
    elif findings["target"].any():
        lines.append("Every target row holds.")
    return "\n".join(lines)


COLOURS = {"holds": "#d4f4dd", "fails": "#f8d7da", "inconclusive": "#fff4d6", "not tested": "#eef0f3"}


def findings_html(findings: pd.DataFrame) -> str:
    """The findings as an HTML report section: a summary per claim and every row, verdicts coloured."""
    esc = html.escape
    out = ["<h2>Findings: do the thesis' claims hold in this run?</h2>",
           "<p class='meta'>a: the cell the thesis found better; diff = mR_a - mR_b in points with a paired "
           "percentile bootstrap CI over queries (gold images for fg_vs_original_v2v). <b>holds</b>: CI above 0, "
           "<b>fails</b>: CI below 0, else inconclusive. target: a row the synthetic dataset is built to show "
           "(claim 6 depends on real VLM image graphs). No multiple-comparison correction.</p>",
           "<table><thead><tr><th>claim</th><th>thesis</th><th>summary</th></tr></thead><tbody>"]
    for c, t, s in claim_summary(findings):
        out.append(f"<tr><td>{esc(c)}</td><td>{esc(t)}</td><td style='text-align:left'>{esc(s)}</td></tr>")
    out.append("</tbody></table>")
    show = _show(findings)
    head = "".join(f"<th>{esc(c)}</th>" for c in SHOW)
    body = []
    for r in show.to_dict("records"):
        cells = []
        for c in SHOW:
            v = r[c]
            text = f"{v:.2f}" if isinstance(v, float) else esc(str(v))
            style = f" style='background:{COLOURS.get(v, '#fff')};font-weight:600'" if c == "verdict" else ""
            cells.append(f"<td{style}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    out.append(f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")
    return "\n".join(out)
