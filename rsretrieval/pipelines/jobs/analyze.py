"""``rayjobs/analyze_datasets.py``: diversity analysis of every configured dataset split (thesis sec. 3.3-3.4).

Image vectors come from the first configured backbone (the benchmark's cached embeddings, computed
once with Ray if missing); caption vectors from the sentence embedder of ``graph_matching.embedder``
(all-MiniLM-L6-v2, the thesis' "pre-trained BERT"), cached per text. Writes to ``<output_dir>/<run_name>/``:
``diversity.csv`` (median / mean / p90 pairwise similarity per dataset and set), ``caption_stats.csv``,
``scenes.csv``, ``analysis.md`` and one PNG per matrix (matrix + histogram with the median), and logs
them to MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from rsretrieval.config import BenchmarkConfig


@dataclass
class AnalysisResult:
    run_dir: Path
    diversity: pd.DataFrame
    captions: pd.DataFrame
    scenes: pd.DataFrame
    plots: list[Path]


def run_analysis(cfg: BenchmarkConfig) -> AnalysisResult:
    from rsretrieval.analysis.diversity import caption_stats, pairwise_stats, plot_similarity, scene_distribution
    from rsretrieval.data.registry import evaluation_split, load_dataset
    from rsretrieval.evaluation.tables import markdown_table
    from rsretrieval.graphs.embedder import CachedTextEmbedder, load_text_embedder
    from rsretrieval.pipelines.runtime.ray_session import init_ray
    from rsretrieval.pipelines.runtime.checkpoints import resolve_checkpoint
    from rsretrieval.pipelines.stages.embed import embed_table, read_embeddings
    from rsretrieval.pipelines.runtime.tracking import metric_key, mlflow_run

    init_ray(cfg.ray)
    run_dir = cfg.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    bcfg = cfg.backbones[0]
    sentences = CachedTextEmbedder(load_text_embedder(cfg.graph_matching.embedder), Path(cfg.cache_dir) / "node_embeddings")
    div, caps, scenes, plots = [], [], [], []
    with mlflow_run(cfg) as tracker:
        for dcfg in cfg.datasets:
            ds = evaluation_split(load_dataset(dcfg, cfg.cache_dir), dcfg)
            img_dir, _ = embed_table("images", ds.images, bcfg.name, resolve_checkpoint(bcfg, cfg), cfg.embed, cfg.cache_dir)
            labels = [x or "" for x in ds.images["scene_label"].to_pylist()]
            order = sorted(range(len(labels)), key=lambda i: labels[i])  # blocks of one scene in the matrix plot
            ids = ds.images["image_id"].to_pylist()
            sets = {f"images ({bcfg.name})": read_embeddings(img_dir, [ids[i] for i in order])}
            for variant in sorted(set(ds.captions["variant"].to_pylist())):
                texts = pc.filter(ds.captions["text"], pc.equal(ds.captions["variant"], variant)).to_pylist()
                sets[f"captions {variant} ({sentences.name})"] = np.asarray(sentences.encode(texts))
            for name, vectors in sets.items():
                stats = pairwise_stats(vectors)
                div.append({"dataset": ds.name, "set": name, "items": stats["n"], "pairs": stats["pairs"],
                            "median": stats["median"], "mean": stats["mean"], "p90": stats["p90"]})
                slug = name.split(" (")[0].replace(" ", "_")
                plots.append(plot_similarity(stats, f"{ds.name} {name}", run_dir / f"{ds.name}-{slug}.png"))
                tracker.log_metrics({metric_key("diversity", ds.name, slug, "median"): stats["median"]})
            caps.append(caption_stats(ds))
            scenes.append(scene_distribution(ds))
        out = AnalysisResult(run_dir, pd.DataFrame(div), pd.concat(caps, ignore_index=True),
                             pd.concat(scenes, ignore_index=True), plots)
        out.diversity.to_csv(run_dir / "diversity.csv", index=False)
        out.captions.to_csv(run_dir / "caption_stats.csv", index=False)
        out.scenes.to_csv(run_dir / "scenes.csv", index=False)
        md = ["# Dataset diversity (thesis sec. 3.3-3.4)", "", "## Pairwise cosine similarity (off-diagonal pairs)", "",
              *markdown_table(out.diversity), "", "## Captions (Tables 3-4)", "", *markdown_table(out.captions), "",
              "## Scenes (Table 2)", "", *markdown_table(out.scenes), "",
              "A high median similarity means a redundant set: a generic caption then fits many images. Graph "
              "collision rates and graph sizes are in the benchmark's graph_stats.csv.", ""]
        (run_dir / "analysis.md").write_text("\n".join(md), encoding="utf-8")
        for path in [run_dir / "analysis.md", run_dir / "diversity.csv", run_dir / "caption_stats.csv",
                     run_dir / "scenes.csv", *plots]:
            tracker.log_artifact(path)
    return out
