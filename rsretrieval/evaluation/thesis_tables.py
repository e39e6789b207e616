"""Result tables in the thesis' layouts (Tables 7-12, 16-18, 20-21), from the long results table.

* :func:`v2v_table` (Table 7; in full A.2.1's Table 16): per dataset x backbone, R@1/5/10 and mR of V2V, original and
  fine-grained captions side by side.
* :func:`mode_table` (Tables 8-11, 17-18, 20-21): per dataset x backbone the mR of the V2V baseline and of every other
  method (mode + crops / graphs + similarity + training), then two summary rows as the thesis defines
  them (checked against Table 10 in the tests): **% above baseline** = share of rows where the method's
  mR is higher than V2V's; **mean % gain** = mean over rows of (method mR - V2V mR), in mR points.
  G2G does not use the image backbone: its value is repeated on every backbone row of its dataset.
* :func:`best_table` (Table 12): V2V and the best method of each matching family (scene-based: V2S /
  S2V / S2S; graph-based: G2G / VG2VG), original and fine-grained side by side, with the two summary
  rows. One method per family for the whole table, as the thesis picks S2S-UC and VG2VG-GMN: the
  highest mean mR over every dataset x backbone x variant row of the *validation* rows when results
  carry a ``split`` column with 'val' rows, else of the test rows (the footnote says which).
  Oracle-graph cells are not candidates (ground-truth graphs are an upper bound, not a method).
* :func:`merge_results`: several runs' results.csv into one table (later runs win on equal keys).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rsretrieval.evaluation.tables import KEY_COLUMNS, markdown_table

BASELINE = "V2V"
SUMMARY_ROWS = ("% above baseline", "mean % gain")
SIGNIFICANT_ROWS = ("% above baseline (significant)", "mean % gain (significant wins)")
MODE_ORDER = ("v2v", "v2s", "s2v", "s2s", "g2g", "vg2vg")
FAMILIES = {"scene-based": ("v2s", "s2v", "s2s"), "graph-based": ("g2g", "vg2vg")}  # Table 12's columns
NOT_CANDIDATES = ("oracle",)  # graph sources that are an upper bound, not a deployable method


def method_label(row: pd.Series) -> str:
    """Column name of a cell's method, e.g. 'V2S uniform', 'VG2VG gmn trained (oracle)'."""
    mode = str(row["mode"]).upper()
    if row["mode"] == "v2v":
        return BASELINE
    if row["mode"] in ("g2g", "vg2vg"):
        return f"{mode} {row['similarity']} {row['training']} ({row['graphs']})"
    crops = row.get("crops", "-")
    return f"{mode} {crops}" if crops not in (None, "-") and isinstance(crops, str) else mode


def v2v_table(df: pd.DataFrame) -> pd.DataFrame:
    """Rows (dataset, backbone); columns '<variant> R@1' ... '<variant> mR' per variant present."""
    v = df[df["mode"] == "v2v"]
    if v.empty:
        return pd.DataFrame()
    wide = v.pivot_table(index=["dataset", "backbone"], columns="variant", values=["R@1", "R@5", "R@10", "mR"],
                         aggfunc="first")
    variants = [x for x in ("original", "fine_grained") if x in wide.columns.get_level_values(1)]
    variants += sorted(set(wide.columns.get_level_values(1)) - set(variants))
    cols = [(m, var) for var in variants for m in ("R@1", "R@5", "R@10", "mR")]
    out = wide[cols]
    out.columns = [f"{var} {m}" for m, var in cols]
    return out.reset_index()


def _long_methods(df: pd.DataFrame, variant: str) -> pd.DataFrame:
    """Cells of one variant with their method label; G2G copied onto every V2V backbone of its dataset."""
    d = df[df["variant"] == variant].copy()
    d["method"] = d.apply(method_label, axis=1)
    backbones = d[d["mode"] == "v2v"][["dataset", "backbone"]].drop_duplicates()
    g2g = d[d["mode"] == "g2g"].drop(columns="backbone").merge(backbones, on="dataset")
    return pd.concat([d[d["mode"] != "g2g"], g2g], ignore_index=True)


def mode_table(df: pd.DataFrame, variant: str, alpha: float = 0.05) -> pd.DataFrame:
    """mR per (dataset, backbone) and method for one caption variant, with the two summary rows; with a
    ``p_vs_v2v`` column also the two rows counting only wins with p < alpha."""
    d = df[df["variant"] == variant]
    if d.empty or not (d["mode"] == "v2v").any():
        return pd.DataFrame()
    d = _long_methods(df, variant)
    wide = d.pivot_table(index=["dataset", "backbone"], columns="method", values="mR", aggfunc="first")
    rank = {m: i for i, m in enumerate(MODE_ORDER)}
    firsts = d.drop_duplicates("method")
    order = sorted(firsts["method"], key=lambda m: (rank.get(firsts.set_index("method").loc[m, "mode"], 99),
                                                     list(firsts["method"]).index(m)))
    wide = wide[[m for m in order if m in wide.columns]]
    base = wide[BASELINE]
    above = {m: (100.0 * (wide[m] > base).mean() if m != BASELINE else float("nan")) for m in wide.columns}
    gain = {m: ((wide[m] - base).mean() if m != BASELINE else float("nan")) for m in wide.columns}
    out = wide.reset_index()
    summary = [{"dataset": SUMMARY_ROWS[0], "backbone": "", **above}, {"dataset": SUMMARY_ROWS[1], "backbone": "", **gain}]
    if "p_vs_v2v" in d and d["p_vs_v2v"].notna().any():
        from rsretrieval.evaluation.uncertainty import significant_summary

        p = d.pivot_table(index=["dataset", "backbone"], columns="method", values="p_vs_v2v", aggfunc="first")
        p = p.reindex(index=wide.index, columns=wide.columns)
        sig = {m: significant_summary(wide[m], base, p[m], alpha) for m in wide.columns if m != BASELINE}
        summary += [{"dataset": SIGNIFICANT_ROWS[0], "backbone": "", **{m: v[0] for m, v in sig.items()}},
                    {"dataset": SIGNIFICANT_ROWS[1], "backbone": "", **{m: v[1] for m, v in sig.items()}}]
    return pd.concat([out, pd.DataFrame(summary)], ignore_index=True)


def ci_table(df: pd.DataFrame, variant: str) -> pd.DataFrame:
    """mR with its bootstrap CI, 'mR [low, high]', per (dataset, backbone) and method (needs mR_ci_* columns)."""
    if "mR_ci_low" not in df or not df["mR_ci_low"].notna().any() or (df["variant"] != variant).all():
        return pd.DataFrame()
    d = _long_methods(df, variant)
    d["text"] = [f"{m:.1f} [{lo:.1f}, {hi:.1f}]" if lo == lo else f"{m:.1f}"
                 for m, lo, hi in zip(d["mR"], d["mR_ci_low"], d["mR_ci_high"])]
    return d.pivot_table(index=["dataset", "backbone"], columns="method", values="text", aggfunc="first").reset_index()


def _split_rows(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(rows the choice is made on, rows shown, the basis in words)."""
    if "split" in df and (df["split"] == "val").any():
        return df[df["split"] == "val"], df[df["split"] != "val"], "validation rows (split = val)"
    return df, df, "the test rows themselves (results.csv has no validation rows): an optimistic choice"


def best_methods(df: pd.DataFrame, families: dict[str, tuple[str, ...]] | None = None,
                 exclude_graphs: tuple[str, ...] = NOT_CANDIDATES) -> tuple[dict[str, str], str]:
    """Per family the method label with the highest mean mR over all (dataset, backbone, variant) rows of
    the selection rows (see :func:`_split_rows`), and the basis of the choice in words."""
    pick, _, basis = _split_rows(df)
    pick = pick[~pick["graphs"].isin(exclude_graphs)] if "graphs" in pick else pick
    long = pd.concat([_long_methods(pick, v) for v in sorted(set(pick["variant"]))], ignore_index=True) \
        if len(pick) else pd.DataFrame(columns=["mode", "method", "mR"])
    out = {}
    for family, modes in (families or FAMILIES).items():
        cand = long[long["mode"].isin(modes) & long["mR"].notna()]
        if not cand.empty:  # ties: the first method in results order
            means = cand.groupby("method", sort=False)["mR"].mean()
            out[family] = str(means.idxmax())
    return out, basis


def best_table(df: pd.DataFrame, families: dict[str, tuple[str, ...]] | None = None) -> tuple[pd.DataFrame, str]:
    """Table 12: rows (dataset, backbone), columns '<variant> V2V' and '<variant> <best method>' per family,
    variants side by side; then '% above baseline' and 'mean % gain' rows per variant. Returns the table
    and its footnote (which methods were chosen, on which rows)."""
    chosen, basis = best_methods(df, families)
    _, shown, _ = _split_rows(df)
    variants = [v for v in ("original", "fine_grained") if v in set(shown["variant"])]
    parts = []
    for variant in variants:
        d = _long_methods(shown, variant)
        if not (d["mode"] == "v2v").any():
            continue
        wide = d.pivot_table(index=["dataset", "backbone"], columns="method", values="mR", aggfunc="first")
        wide = wide[[m for m in (BASELINE, *chosen.values()) if m in wide.columns]]
        wide = wide[wide[BASELINE].notna()]
        base = wide[BASELINE]
        above = {m: (100.0 * (wide[m] > base).mean() if m != BASELINE else float("nan")) for m in wide.columns}
        gain = {m: ((wide[m] - base).mean() if m != BASELINE else float("nan")) for m in wide.columns}
        wide = pd.concat([wide, pd.DataFrame([above, gain], index=pd.MultiIndex.from_tuples(
            [(SUMMARY_ROWS[0], ""), (SUMMARY_ROWS[1], "")], names=["dataset", "backbone"]))])
        wide.columns = [f"{variant} {m}" for m in wide.columns]
        parts.append(wide)
    if not parts:
        return pd.DataFrame(), ""
    table = pd.concat(parts, axis=1)
    order = [i for i in table.index if i[0] not in SUMMARY_ROWS] + [(r, "") for r in SUMMARY_ROWS]
    table = table.loc[order].reset_index()
    picked = "; ".join(f"{f}: {m}" for f, m in chosen.items()) or "none (only V2V cells)"
    note = (f"Table 12: best method per matching family ({picked}), one per family for the whole table, by the "
            f"highest mean mR over every dataset x backbone x variant row of {basis}; oracle-graph cells are "
            "not candidates.")
    return table, note


def tables_markdown(df: pd.DataFrame, footnotes: list[str] | None = None, alpha: float = 0.05) -> str:
    """All thesis-layout tables of a results table as one Markdown document."""
    lines = ["# Results in the thesis' layouts", ""]
    v2v = v2v_table(df)
    if not v2v.empty:
        lines += ["## V2V baseline (Table 7, in full Table 16): R@1 / R@5 / R@10 / mR, original vs fine-grained", "",
                  *markdown_table(v2v), ""]
    for variant in [v for v in ("original", "fine_grained") if v in set(df["variant"])] + \
            sorted(set(df["variant"]) - {"original", "fine_grained"}):
        t = mode_table(df, variant, alpha)
        if t.empty:
            continue
        lines += [f"## mR per method, {variant} captions (Tables 8-11, 17-18, 20-21)", "", *markdown_table(t), ""]
        ci = ci_table(df, variant)
        if not ci.empty:
            lines += [f"### mR with its bootstrap CI over queries, {variant} captions", "", *markdown_table(ci), ""]
    best, note = best_table(df)
    if not best.empty:
        lines += ["## V2V baseline vs the best scene-based and graph-based method (Table 12), mR", "",
                  *markdown_table(best), "", note, ""]
    lines += ["mR: mean of T2I R@1/5/10 (%). '% above baseline': share of dataset x backbone rows where the "
              "method's mR beats V2V; 'mean % gain': mean of (method - V2V) in mR points (the thesis' definitions, "
              "reproduced from its Table 10 in the tests). G2G ignores the image backbone: its mR repeats on every "
              "backbone row. With p-values (p_vs_v2v in results.csv): '% above baseline (significant)' counts only "
              "rows where the method beats V2V with p < alpha; 'mean % gain (significant wins)' counts a "
              "non-significant gain as 0 and keeps losses."]
    lines += [f"- {n}" for n in footnotes or []]
    return "\n".join(lines) + "\n"


def write_thesis_tables(df: pd.DataFrame, out_dir: Path, footnotes: list[str] | None = None,
                        alpha: float = 0.05) -> list[Path]:
    """tables.md plus one CSV per table (table_v2v.csv, table_modes_<variant>.csv, table_best.csv)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "tables.md"]
    paths[0].write_text(tables_markdown(df, footnotes, alpha), encoding="utf-8")
    v2v = v2v_table(df)
    if not v2v.empty:
        v2v.to_csv(out_dir / "table_v2v.csv", index=False)
        paths.append(out_dir / "table_v2v.csv")
    for variant in sorted(set(df["variant"])):
        t = mode_table(df, variant, alpha)
        if not t.empty:
            t.to_csv(out_dir / f"table_modes_{variant}.csv", index=False)
            paths.append(out_dir / f"table_modes_{variant}.csv")
    best, _ = best_table(df)
    if not best.empty:
        best.to_csv(out_dir / "table_best.csv", index=False)
        paths.append(out_dir / "table_best.csv")
    return paths


def merge_results(paths: list[Path]) -> pd.DataFrame:
    """results.csv files (or run folders holding one) into one table; on equal keys the later run wins."""
    frames = []
    for p in paths:
        p = Path(p)
        csv = p / "results.csv" if p.is_dir() else p
        if not csv.is_file():
            raise FileNotFoundError(f"{p}: no results.csv (give run folders or results.csv files)")
        f = pd.read_csv(csv)
        missing = [c for c in KEY_COLUMNS if c not in f.columns]
        if missing:
            raise ValueError(f"{csv}: not a results table (missing columns {missing})")
        f["run"] = csv.parent.name
        frames.append(f)
    merged = pd.concat(frames, ignore_index=True)
    return merged.drop_duplicates(subset=KEY_COLUMNS, keep="last").reset_index(drop=True)


def summary_metrics(df: pd.DataFrame, alpha: float = 0.05) -> dict[str, float]:
    """'% above baseline' and 'mean % gain' of every method as MLflow metrics (names sanitised)."""
    import re

    out = {}
    for variant in sorted(set(df["variant"])):
        t = mode_table(df, variant, alpha)
        if t.empty:
            continue
        rows = t.set_index("dataset")
        for method in t.columns[2:]:
            if method == BASELINE:
                continue
            name = re.sub(r"[^A-Za-z0-9_\-. /]", "", method).replace(" ", "_")
            out[f"tables/{variant}/{name}/above_baseline_pct"] = float(rows.loc[SUMMARY_ROWS[0], method])
            out[f"tables/{variant}/{name}/mean_gain_points"] = float(rows.loc[SUMMARY_ROWS[1], method])
            if SIGNIFICANT_ROWS[0] in rows.index:
                out[f"tables/{variant}/{name}/above_baseline_significant_pct"] = float(rows.loc[SIGNIFICANT_ROWS[0], method])
                out[f"tables/{variant}/{name}/mean_gain_significant_points"] = float(rows.loc[SIGNIFICANT_ROWS[1], method])
    return out
