"""Scale benchmark of the two-stage path on synthetic corpora (see :mod:`rsretrieval.search.scale`).

``rsretrieval bench scale`` (``rayjobs/bench_scale.py``). Per corpus size: the corpus is written once
(cached under ``--data-dir``), then measured in a fresh Python process (so each size's peak memory is its own). Prints one row per stage and the ratios the
issue's targets are about: rerank ms/query and peak memory of the largest size over the second
largest (target < 1.3x), and the blocked exact shortlist vs CLIP_benchmark-style full-matrix scoring.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd


def default_data_dir() -> Path:
    """Where corpora are written unless told: ``<cache_dir>/scale``."""
    from rsretrieval.config import default_cache_dir

    return Path(default_cache_dir()) / "scale"


def run_sizes(sizes: list[int], data_dir: Path, queries: int, k: int, full_matrix_max: int) -> pd.DataFrame:
    from rsretrieval.search.scale import write_synthetic_corpus

    rows = []
    for n in sizes:
        folder = Path(data_dir) / f"n{n}"
        t0 = time.perf_counter()
        write_synthetic_corpus(folder, n)
        written = time.perf_counter() - t0
        cmd = [sys.executable, "-m", "rsretrieval.benchmarks.scale", "--worker", str(folder), "--queries", str(queries),
               "--k", str(k)] + (["--full-matrix"] if n <= full_matrix_max else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        size_mb = sum(p.stat().st_size for p in folder.rglob("*.npy")) / 1e6
        for r in json.loads(out.strip().splitlines()[-1]):
            rows.append({**r, "corpus_mb_on_disk": size_mb, "corpus_write_s": written})
    return pd.DataFrame(rows)


def ratios(df: pd.DataFrame) -> list[str]:
    """The issue's ratios: flatness of the rerank path between the two largest sizes; blocked vs full matrix."""
    lines = []
    sizes = sorted(df["images"].unique())
    if len(sizes) >= 2:
        a, b = sizes[-2], sizes[-1]
        for stage in [s for s in df["stage"].unique() if "rerank" in s or "store" in s]:
            x = df[(df["images"] == a) & (df["stage"] == stage)].iloc[0]
            y = df[(df["images"] == b) & (df["stage"] == stage)].iloc[0]
            lines.append(f"{stage}: {b:,} vs {a:,} images: ms/query x{y['ms_per_query'] / x['ms_per_query']:.2f}, "
                         f"peak anon memory x{y['peak_anon_mb'] / x['peak_anon_mb']:.2f} (target < 1.3)")
    for n in sizes:
        s = df[df["images"] == n].set_index("stage")
        full = [i for i in s.index if "full matrix" in i]
        if full:
            ex, fu = s.loc["v2v shortlist (exact, blocked)"], s.loc[full[0]]
            lines.append(f"V2V at {n:,} images: full matrix + sort takes {fu['seconds'] / ex['seconds']:.2f}x the time of "
                         f"the blocked exact top-k; peak memory {ex['peak_anon_mb']:.0f} vs {fu['peak_anon_mb']:.0f} MB, "
                         f"same R@1 ({ex['R@1']:.2f} / {fu['R@1']:.2f})")
    return lines


def bench(sizes: list[int], data_dir: Path | None = None, queries: int = 1000, k: int = 100,
          full_matrix_max: int = 100_000, out: Path | None = None) -> pd.DataFrame:
    """Measure every size (``rsretrieval bench scale``); prints the rows and the ratios, writes ``out`` (CSV)."""
    df = run_sizes(sizes, data_dir or default_data_dir(), queries, k, full_matrix_max)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 20)
    print("SYNTHETIC corpora (random vectors in topic clusters): timings and memory are real, recalls only "
          "show the shortlist ceiling at work")
    print(df[["images", "stage", "seconds", "ms_per_query", "R@1", "R@10", "shortlist_recall", "peak_anon_mb",
              "corpus_mb_on_disk"]].round(3).to_string(index=False))
    for line in ratios(df):
        print(line)
    if out:
        df.to_csv(out, index=False)
    return df


def main(argv: list[str] | None = None) -> None:
    """The measuring child process of :func:`run_sizes`: one corpus folder; JSON on the last stdout line."""
    p = argparse.ArgumentParser(description="one measurement of rsretrieval bench scale, in a fresh process")
    p.add_argument("--worker", type=Path, required=True, help="corpus folder")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--k", type=int, default=100, help="shortlist size")
    p.add_argument("--full-matrix", action="store_true")
    args = p.parse_args(argv)
    from rsretrieval.search.scale import measure

    print(json.dumps(measure(args.worker, args.queries, args.k, full_matrix=args.full_matrix)))


if __name__ == "__main__":
    main()
