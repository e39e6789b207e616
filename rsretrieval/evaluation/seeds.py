"""Results over several training seeds: mean, spread and count per cell.

A trained method (graph encoder + GMN, VG2VG heads, the untrained-GMN plumbing check) gives one
number per seed; one seed's number says little about the method. Cells that do not depend on the
seed (V2V, S2S, Hungarian on vanilla embeddings) come out with sd 0, which the table shows too, so
a reader sees which rows a seed can move.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from rsretrieval.evaluation.tables import KEY_COLUMNS, METRIC_COLUMNS, markdown_table

SEED_METRICS = ["R@1", "R@5", "R@10", "mR"]


def aggregate_seeds(results: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """seed -> that run's results table, into one row per cell: ``<metric>`` (mean over seeds),
    ``<metric>_sd`` (sample standard deviation; NaN with one seed), ``<metric>_min`` / ``_max``,
    ``n_seeds`` and ``seeds``. Cells missing from some seed's run keep the seeds they have."""
    frames = []
    for seed, df in results.items():
        frames.append(df.assign(seed=seed))
    if not frames:
        raise ValueError("aggregate_seeds: no results given")
    all_runs = pd.concat(frames, ignore_index=True)
    metrics = [m for m in METRIC_COLUMNS if m in all_runs and pd.to_numeric(all_runs[m], errors="coerce").notna().any()]
    for m in metrics:
        all_runs[m] = pd.to_numeric(all_runs[m], errors="coerce")
    keys = all_runs[KEY_COLUMNS].astype(str)  # None / NaN keys group together, as one cell
    grouped = all_runs.groupby([keys[k] for k in KEY_COLUMNS], sort=False, dropna=False)
    out = grouped[metrics].mean()
    for m in metrics:
        out[f"{m}_sd"] = grouped[m].std(ddof=1)
        out[f"{m}_min"], out[f"{m}_max"] = grouped[m].min(), grouped[m].max()
    out["n_seeds"] = grouped["seed"].nunique()
    out["seeds"] = grouped["seed"].apply(lambda s: " ".join(str(x) for x in sorted(set(s))))
    first = grouped[KEY_COLUMNS].first()  # the original key values (not their string form)
    out = out.reset_index(drop=True)
    out[KEY_COLUMNS] = first.reset_index(drop=True)
    return out[KEY_COLUMNS + [c for c in out.columns if c not in KEY_COLUMNS]]


def mean_sd(mean: float, sd: float) -> str:
    """'45.20 ± 1.31' (or '45.20' when the spread is unknown)."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    return f"{mean:.2f}" if sd is None or math.isnan(sd) else f"{mean:.2f} ± {sd:.2f}"


def write_seed_tables(agg: pd.DataFrame, out_dir: Path, runs: list[Path]) -> list[Path]:
    """``results_seeds.csv`` (every column) and ``results_seeds.md`` (mean ± sd per cell)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv, md = out_dir / "results_seeds.csv", out_dir / "results_seeds.md"
    agg.to_csv(csv, index=False)
    shown = agg[KEY_COLUMNS].copy()
    for m in SEED_METRICS:
        if m in agg:
            shown[m] = [mean_sd(a, b) for a, b in zip(agg[m], agg[f"{m}_sd"])]
    shown["n_seeds"] = agg["n_seeds"]
    moved = int((agg.get("mR_sd", pd.Series(dtype=float)).fillna(0) > 0).sum())
    md.write_text("\n".join([
        f"# Results over {int(agg['n_seeds'].max())} seeds (mean ± sample sd)", "",
        *markdown_table(shown), "",
        f"{moved} of {len(agg)} cells change with the seed (sd > 0): trained graph encoders / GMN / VG2VG heads; "
        "the others do not depend on it.", "",
        "Runs: " + ", ".join(str(r) for r in runs)]) + "\n", encoding="utf-8")
    return [csv, md]
