"""Dataset diversity analysis (thesis sec. 3.3-3.4, Tables 2-4, Figures 3-6).

* image similarity: pairwise cosine of the backbone's image embeddings (matrix + histogram with median);
* caption similarity: pairwise cosine of sentence embeddings (all-MiniLM-L6-v2 by default), per variant;
* caption lengths (words), vocabulary and unique texts per variant (Tables 3-4);
* scene distribution from ``scene_label``: images per scene, and Table 2's aggregate row per dataset
  (# scenes, max / min / median / mean images per scene; unlabelled images are not a scene);
* Figure 7: original vs fine-grained caption-to-caption similarity histograms overlaid
  (:func:`rsretrieval.analysis.figures.plot_caption_similarity_overlay`).

The numbers come from the upper triangle of each matrix (pairs, no self-similarity); a high median
means a redundant dataset where a generic caption fits many images.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from rsretrieval.data.schema import RSDataset

BINS = 50


def pairwise_stats(vectors: np.ndarray) -> dict[str, Any]:
    """Cosine similarity matrix of ``vectors`` and statistics of its off-diagonal pairs."""
    v = np.asarray(vectors, np.float32)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    sim = v @ v.T
    pairs = sim[np.triu_indices(len(v), k=1)]
    if pairs.size == 0:
        raise ValueError("need at least 2 vectors for pairwise similarities")
    counts, edges = np.histogram(pairs, bins=BINS, range=(-1.0, 1.0))
    return {"matrix": sim, "n": len(v), "pairs": int(pairs.size), "median": float(np.median(pairs)),
            "mean": float(pairs.mean()), "p90": float(np.quantile(pairs, 0.9)), "counts": counts, "edges": edges}


def caption_stats(ds: RSDataset) -> pd.DataFrame:
    """Per variant: captions, unique texts, words per caption (mean/median/min/max), vocabulary size."""
    rows = []
    for variant in sorted(set(ds.captions["variant"].to_pylist())):
        texts = pc.filter(ds.captions["text"], pc.equal(ds.captions["variant"], variant)).to_pylist()
        words = [re.findall(r"[A-Za-z0-9'-]+", t.lower()) for t in texts]
        lengths = np.array([len(w) for w in words])
        rows.append({"dataset": ds.name, "variant": variant, "captions": len(texts),
                     "unique_texts": len({" ".join(w) for w in words}), "words_mean": float(lengths.mean()),
                     "words_median": float(np.median(lengths)), "words_min": int(lengths.min()),
                     "words_max": int(lengths.max()), "vocabulary": len({x for w in words for x in w})})
    return pd.DataFrame(rows)


def scene_distribution(ds: RSDataset) -> pd.DataFrame:
    """Images per scene label (Table 2); 'unlabelled' for images without one."""
    labels = [x or "unlabelled" for x in ds.images["scene_label"].to_pylist()]
    counts = pd.Series(labels).value_counts()
    return pd.DataFrame({"dataset": ds.name, "scene": counts.index, "images": counts.values,
                         "share_pct": 100.0 * counts.values / max(1, len(labels))})


TABLE2_COLUMNS = ["# Scenes", "Max Images / Scene", "Min Images / Scene", "Median Images / Scene",
                  "Mean Images / Scene"]


def scene_summary(scenes: pd.DataFrame) -> pd.DataFrame:
    """Table 2's rows from :func:`scene_distribution` frames: per dataset, # scenes and max / min /
    median / mean images per scene. 'unlabelled' is no scene (counted in ``unlabelled_images``); a
    dataset without any label gets 0 scenes and NaN statistics, as the thesis leaves SYDNEY / UCM out."""
    missing = {"dataset", "scene", "images"} - set(scenes.columns)
    if missing:
        raise ValueError(f"scene table lacks columns {sorted(missing)} (expected scene_distribution's output)")
    rows = []
    for name, g in scenes.groupby("dataset", sort=False):
        labelled = g[g["scene"] != "unlabelled"]["images"].astype(int)
        stats = ([len(labelled), int(labelled.max()), int(labelled.min()), float(labelled.median()), float(labelled.mean())]
                 if len(labelled) else [0, float("nan"), float("nan"), float("nan"), float("nan")])
        rows.append({"Dataset": name, **dict(zip(TABLE2_COLUMNS, stats)),
                     "unlabelled_images": int(g.loc[g["scene"] == "unlabelled", "images"].sum())})
    return pd.DataFrame(rows, columns=["Dataset", *TABLE2_COLUMNS, "unlabelled_images"])


def plot_similarity(stats: dict[str, Any], title: str, path: Path) -> Path:
    """Matrix (left) and histogram with the median marked (right), as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    im = a.imshow(stats["matrix"], vmin=-1, vmax=1, cmap="viridis")
    a.set_title(f"{title}: {stats['n']} x {stats['n']}")
    fig.colorbar(im, ax=a, fraction=0.046)
    centres = (stats["edges"][:-1] + stats["edges"][1:]) / 2
    b.bar(centres, stats["counts"], width=stats["edges"][1] - stats["edges"][0])
    b.axvline(stats["median"], color="red", label=f"median {stats['median']:.3f}")
    b.set_xlabel("cosine similarity of pairs")
    b.set_ylabel("pairs")
    b.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
