"""The results table: one row per (dataset, variant, backbone, mode, crops, graphs, similarity, training) cell."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

KEY_COLUMNS = ["dataset", "variant", "backbone", "mode", "crops", "graphs", "similarity", "training"]
METRIC_COLUMNS = ["R@1", "R@5", "R@10", "mR", "I2T_R@1", "I2T_R@5", "I2T_R@10", "mR6"]
INFO_COLUMNS = ["n_queries", "n_images", "embed_seconds", "score_seconds", "rank_seconds", "notes"]


def results_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows -> DataFrame with the key columns first, then metrics, then run info."""
    df = pd.DataFrame(rows)
    for col in KEY_COLUMNS + METRIC_COLUMNS + INFO_COLUMNS:
        if col not in df:
            df[col] = None
    extra = [c for c in df.columns if c not in KEY_COLUMNS + METRIC_COLUMNS + INFO_COLUMNS]
    return df[KEY_COLUMNS + METRIC_COLUMNS + INFO_COLUMNS + extra]


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def markdown_table(df: pd.DataFrame, cols: list[str] | None = None) -> list[str]:
    """Lines of a Markdown table of ``cols`` (default all); floats with two decimals, NaN as '-'."""
    cols = cols or list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(_fmt(row[c]) for c in cols) + " |")
    return lines


def ci_text(low: Any, high: Any) -> str | None:
    """A CI as compact text, '[41.2, 47.9]' (None when missing)."""
    if low is None or high is None or (isinstance(low, float) and math.isnan(low)):
        return None
    return f"[{low:.1f}, {high:.1f}]"


def trust_display(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Compact display columns of the trust columns present (CI of mR, multi-positive/ceiling R@1, p vs V2V)."""
    df, cols = df.copy(), []
    if "mR_ci_low" in df and df["mR_ci_low"].notna().any():
        df["mR CI"] = [ci_text(lo, hi) for lo, hi in zip(df["mR_ci_low"], df["mR_ci_high"])]
        cols.append("mR CI")
    cols += [c for c in ("dedup_R@1", "mp_R@1", "ceiling_R@1") if c in df and df[c].notna().any()]
    if "p_vs_v2v" in df and df["p_vs_v2v"].notna().any():
        df["p vs V2V"] = [None if p != p else f"{p:.3f}" for p in df["p_vs_v2v"]]
        cols.append("p vs V2V")
    return df, cols


def to_markdown(df: pd.DataFrame, title: str = "Results", footnotes: list[str] | None = None) -> str:
    """A Markdown table of the results (percentages with two decimals) with footnotes."""
    df, trust = trust_display(df)
    cols = KEY_COLUMNS + [c for c in METRIC_COLUMNS if df[c].notna().any()] + trust + ["n_queries", "n_images", "notes"]
    lines = [f"# {title}", "", *markdown_table(df, cols)]
    lines += ["", "R@K: % of caption queries whose gold image is in the top K (text-to-image). "
              "mR: mean of T2I R@1/5/10 (the thesis' definition). mR6: mean of T2I and I2T R@1/5/10 "
              "(the literature's 'mean recall'); the two are not comparable."]
    for note in footnotes or []:
        lines.append(f"- {note}")
    return "\n".join(lines) + "\n"


def write_results(df: pd.DataFrame, out_dir: Path, footnotes: list[str] | None = None) -> dict[str, Path]:
    """Write results.csv and results.md; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out_dir / "results.csv", "md": out_dir / "results.md"}
    df.to_csv(paths["csv"], index=False)
    paths["md"].write_text(to_markdown(df, footnotes=footnotes), encoding="utf-8")
    return paths
