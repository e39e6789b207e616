"""``rayjobs/analyze_datasets.py``: diversity analysis of every configured dataset split (thesis sec. 3.3-3.4).

Image vectors come from the first configured backbone (the benchmark's cached embeddings, computed
once with Ray if missing); caption vectors from the sentence embedder of ``graph_matching.embedder``
(all-MiniLM-L6-v2, the thesis' "pre-trained BERT"), cached per text. Writes to ``<output_dir>/<run_name>/``:
``diversity.csv`` (median / mean / p90 pairwise similarity per dataset and set), ``caption_stats.csv``,
``scenes.csv`` (images per scene), ``scene_summary.csv`` (Table 2: # scenes, max / min / median / mean
images per scene), ``analysis.md``, one PNG per matrix (matrix + histogram with the median) and
``caption_similarity_overlay.png`` (Figure 7: original vs fine-grained caption similarities), and logs
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
    scene_summary: pd.DataFrame | None = None  # Table 2's aggregate rows


def run_analysis(cfg: BenchmarkConfig) -> AnalysisResult:
    from rsretrieval.analysis.diversity import (caption_stats, pairwise_stats, plot_similarity, scene_distribution,
                                                scene_summary)
    from rsretrieval.analysis.figures import plot_caption_similarity_overlay
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
    caption_hists: dict[str, dict[str, dict]] = {}  # dataset -> variant -> stats, for Figure 7
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
                if name.startswith("captions "):
                    caption_hists.setdefault(ds.name, {})[name.split()[1]] = {k: v for k, v in stats.items() if k != "matrix"}
                div.append({"dataset": ds.name, "set": name, "items": stats["n"], "pairs": stats["pairs"],
                            "median": stats["median"], "mean": stats["mean"], "p90": stats["p90"]})
                slug = name.split(" (")[0].replace(" ", "_")
                plots.append(plot_similarity(stats, f"{ds.name} {name}", run_dir / f"{ds.name}-{slug}.png"))
                tracker.log_metrics({metric_key("diversity", ds.name, slug, "median"): stats["median"]})
            caps.append(caption_stats(ds))
            scenes.append(scene_distribution(ds))
        all_scenes = pd.concat(scenes, ignore_index=True)
        out = AnalysisResult(run_dir, pd.DataFrame(div), pd.concat(caps, ignore_index=True), all_scenes, plots,
                             scene_summary(all_scenes))
        out.diversity.to_csv(run_dir / "diversity.csv", index=False)
        out.captions.to_csv(run_dir / "caption_stats.csv", index=False)
        out.scenes.to_csv(run_dir / "scenes.csv", index=False)
        out.scene_summary.to_csv(run_dir / "scene_summary.csv", index=False)
        fig7 = []
        if any({"original", "fine_grained"} <= set(v) for v in caption_hists.values()):
            fig7 = [plot_caption_similarity_overlay(caption_hists, run_dir / "caption_similarity_overlay.png")]
            plots.extend(fig7)
        md = ["# Dataset diversity (thesis sec. 3.3-3.4)", "", "## Pairwise cosine similarity (off-diagonal pairs)", "",
              *markdown_table(out.diversity), "", "## Captions (Tables 3-4)", "", *markdown_table(out.captions), "",
              "## Scene distribution statistics (Table 2)", "", *markdown_table(out.scene_summary), "",
              "Images per labelled scene; 'unlabelled' images are no scene (unlabelled_images). scene_summary.csv.", "",
              "## Images per scene", "", *markdown_table(out.scenes), "",
              "## Figures", "", *[f"- `{p.name}`: similarity matrix and histogram" for p in plots if p not in fig7],
              *(["- Figure 7: `caption_similarity_overlay.png`, caption-caption similarity densities per dataset, "
                 "blue original vs orange fine-grained"] if fig7 else []), "",
              "A high median similarity means a redundant set: a generic caption then fits many images. Graph "
              "collision rates and graph sizes are in the benchmark's graph_stats.csv (Figure 20: graph_sizes.png).", ""]
        (run_dir / "analysis.md").write_text("\n".join(md), encoding="utf-8")
        for path in [run_dir / "analysis.md", run_dir / "diversity.csv", run_dir / "caption_stats.csv",
                     run_dir / "scenes.csv", run_dir / "scene_summary.csv", *plots]:
            tracker.log_artifact(path)
    return out
