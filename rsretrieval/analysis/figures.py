"""Thesis figures that compare the original with the fine-grained captions (matplotlib, Agg, lazy import).

* :func:`plot_caption_similarity_overlay` (Figure 7): per dataset, the caption-to-caption cosine
  similarity histograms of both variants overlaid, blue original and orange fine-grained as the
  thesis draws them. Densities, not counts: a variant with 5 captions per image has ~25x the pairs.
* :func:`plot_graph_sizes` (Figure 20): per dataset, the distribution of nodes per graph of the
  query graphs of both variants (and of each image-graph source, dashed), from ``graph_stats.csv``
  rows (``nodes_histogram``).

Each PNG carries what was drawn in its ``Description`` text chunk (JSON: dataset -> series -> number
of pairs or graphs), so a reader (and the tests) can check that both variants went into it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

VARIANT_COLORS = {"original": "#1f77b4", "fine_grained": "#ff7f0e"}  # the thesis' blue / orange
VARIANT_LABELS = {"original": "Original data", "fine_grained": "Fine-grained data"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path, drawn: dict[str, dict[str, int]]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=80, metadata={"Description": json.dumps(drawn, sort_keys=True)})
    _pyplot().close(fig)
    return path


def plot_caption_similarity_overlay(stats: Mapping[str, Mapping[str, Mapping[str, Any]]], path: Path) -> Path:
    """Figure 7 from ``{dataset: {variant: pairwise_stats(...)}}`` (needs ``counts``, ``edges``, ``pairs``).

    Variants other than original / fine_grained are ignored; a dataset with only one of them is drawn
    with it alone. Raises ValueError when no dataset has both (there is nothing to compare).
    """
    both = [d for d, v in stats.items() if {"original", "fine_grained"} <= set(v)]
    if not both:
        raise ValueError("Figure 7 needs the original and the fine-grained captions of at least one dataset; got "
                         + ", ".join(f"{d}: {sorted(v)}" for d, v in stats.items()))
    plt = _pyplot()
    names = list(stats)
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    drawn: dict[str, dict[str, int]] = {}
    for ax, name in zip(axes[0], names):
        drawn[name] = {}
        for variant in ("original", "fine_grained"):
            s = stats[name].get(variant)
            if s is None:
                continue
            edges, counts = np.asarray(s["edges"]), np.asarray(s["counts"], float)
            density = counts / max(1.0, counts.sum()) / (edges[1] - edges[0])
            ax.stairs(density, edges, fill=True, alpha=0.55, color=VARIANT_COLORS[variant],
                      label=f"{VARIANT_LABELS[variant]} (median {s['median']:.2f})" if "median" in s else VARIANT_LABELS[variant])
            drawn[name][variant] = int(s.get("pairs", counts.sum()))
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("caption-caption cosine similarity")
        ax.set_ylabel("density of pairs")
        ax.legend(fontsize=7)
    return _save(fig, path, drawn)


def _histogram(value: Any) -> dict[int, int]:
    """A nodes histogram as a dict; graph_stats.csv stores it as JSON text."""
    raw = json.loads(value) if isinstance(value, str) else dict(value or {})
    return {int(k): int(v) for k, v in raw.items()}


def plot_graph_sizes(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Figure 20 from graph_stats rows (``dataset``, ``graphs``, ``nodes_histogram``): share of graphs per
    number of nodes, query graphs of each variant solid (blue original, orange fine-grained), image-graph
    sources dashed. Raises ValueError when no row carries a histogram."""
    usable = [r for r in rows if r.get("nodes_histogram") not in (None, "", "{}") and _histogram(r["nodes_histogram"])]
    if not usable:
        raise ValueError("Figure 20 needs graph_stats rows with a nodes_histogram (graph_set_stats writes it)")
    plt = _pyplot()
    names = list(dict.fromkeys(r["dataset"] for r in usable))
    fig, axes = plt.subplots(1, len(names), figsize=(4.8 * len(names), 3.4), squeeze=False)
    drawn: dict[str, dict[str, int]] = {}
    for ax, name in zip(axes[0], names):
        drawn[name] = {}
        for r in (r for r in usable if r["dataset"] == name):
            hist = _histogram(r["nodes_histogram"])
            sizes = np.arange(min(hist), max(hist) + 1)
            share = np.array([hist.get(int(n), 0) for n in sizes], float) / sum(hist.values())
            kind, _, source = str(r["graphs"]).partition(":")
            if kind == "query":
                style = {"color": VARIANT_COLORS.get(source, "#555"), "lw": 2}
                label = f"query graphs, {VARIANT_LABELS.get(source, source)}"
            else:
                style = {"color": "#2ca02c" if source == "oracle" else "#7f7f7f", "ls": "--", "lw": 1.3}
                label = f"image graphs, {source}" + (" (simulated)" if "simulated" in source else "")
            ax.step(sizes, share, where="mid", label=label, **style)
            drawn[name][str(r["graphs"])] = int(sum(hist.values()))
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("nodes per graph")
        ax.set_ylabel("share of graphs")
        ax.legend(fontsize=7)
    return _save(fig, path, drawn)
