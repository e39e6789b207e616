"""One self-contained HTML report per benchmark run (``report.html``; ``rsretrieval report RUN_DIR``).

Everything is inlined (CSS, PNG plots, JPEG thumbnails as data URIs, no scripts), so the file can be
mailed, attached to MLflow, or opened offline. It shows, from the files of the run folder:

* what ran and the caveats (synthetic data, simulated VLM, oracle graphs) from the results footnotes;
* the findings table (does each claim of the thesis hold in this run?, ``findings.csv``);
* the thesis-layout tables (tables.md) and plots of mR per method and of mR against ms per query;
* cost and latency per method (cost.md), generation, training and graph statistics when present;
* example retrievals: queries drawn at random (seeded, never picked for looking good) with, per
  method (V2V and the best cell of every other mode), the top-k thumbnails and scores, the gold image
  and its rank, and for graph modes the query graph next to the gold image's graph.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from rsretrieval.analysis.html import esc, figure_uri, file_uri, frame_html, markdown_html, thumbnail_uri
from rsretrieval.config import BenchmarkConfig, ReportConfig
from rsretrieval.config.base import local_folder
from rsretrieval.evaluation.cost import cell_label

MAX_EDGES = 14  # edges listed per graph in the examples

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1200px;padding:0 1.5em 3em;color:#1d2430}
h1{margin-top:1em}h2{border-bottom:2px solid #dde3ea;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}th,td{border:1px solid #d5dbe3;padding:3px 7px;text-align:right}
th{background:#f1f4f8;position:sticky;top:0}td:first-child,th:first-child{text-align:left}
.scroll{overflow-x:auto;max-width:100%}.banner{background:#fff4d6;border:1px solid #e8c766;padding:.6em 1em;border-radius:6px}
.meta{color:#5a6573;font-size:14px}.q{border:1px solid #dde3ea;border-radius:8px;padding:.8em 1em;margin:1.2em 0}
.qtext{font-size:15px;margin:.2em 0 .6em}.row{display:flex;align-items:center;gap:6px;margin:4px 0}
.label{width:290px;font-size:13px;flex:none}.thumb{text-align:center;font-size:11px;color:#5a6573}
img{max-width:100%}.thumb img{display:block;border:3px solid transparent;border-radius:4px}.thumb.gold img{border-color:#1f9d55}
.gold-tag{color:#1f9d55;font-weight:600}.graphs{display:flex;gap:2em;font-size:12px;margin:.3em 0 .3em 296px}
.graphs ul{margin:.2em 0;padding-left:1.2em}details summary{cursor:pointer;font-size:13px;color:#3056a0}
"""


def load_run_config(run_dir: Path) -> BenchmarkConfig:
    """The resolved config a run wrote to ``config.yaml``."""
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: pass the folder of a benchmark run (runs/<run_name>/)")
    return BenchmarkConfig.model_validate(yaml.safe_load(path.read_text()))


def _footnotes(run_dir: Path) -> list[str]:
    path = run_dir / "results.md"
    if not path.exists():
        return []
    return [line[2:] for line in path.read_text().splitlines() if line.startswith("- ")]


def _label(row: dict[str, Any], backbones: int) -> str:
    name = cell_label(row)
    return f"{name} [{row['backbone']}]" if backbones > 1 or row["mode"] == "g2g" else name


def _mr_plot(results: pd.DataFrame) -> str:
    """Horizontal bars of mR per method, one panel per dataset x variant; V2V as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(results.groupby(["dataset", "variant"], sort=False))
    n_back = results["backbone"].nunique()
    height = max(2.5, 0.2 * max(len(g) for _, g in groups) + 0.8)  # one panel per row: long labels fit
    fig, axes = plt.subplots(len(groups), 1, figsize=(9, height * len(groups)), squeeze=False)
    colors = {"v2v": "#555", "v2s": "#4c8bd6", "s2v": "#7fb4ea", "s2s": "#2a5fa5", "g2g": "#d9822b", "vg2vg": "#b3541e"}
    for ax, ((ds, variant), g) in zip(axes[:, 0], groups):
        g = g.iloc[::-1]
        labels = [_label(r, n_back) + (" *" if "simulated" in str(r.get("notes", "")) else "") for r in g.to_dict("records")]
        ax.barh(range(len(g)), g["mR"], color=[colors.get(m, "#999") for m in g["mode"]])
        ax.set_yticks(range(len(g)), labels, fontsize=7)
        for v in g.loc[g["mode"] == "v2v", "mR"]:
            ax.axvline(v, ls="--", color="#c0392b", lw=1)
        ax.set_xlabel("mR (%)")
        ax.set_title(f"{ds} / {variant}", fontsize=10)
    axes[-1, 0].annotate("* simulated image graphs; dashed: V2V baseline", (0, 0), (0, -30), fontsize=7,
                         xycoords="axes fraction", textcoords="offset points", va="top")
    fig.tight_layout()
    return figure_uri(fig)


def _cost_plot(results: pd.DataFrame, cost: pd.DataFrame) -> str | None:
    """mR against inference ms per query (log scale): what each method buys for its latency."""
    import matplotlib.pyplot as plt

    keys = ["dataset", "variant", "backbone", "mode", "crops", "graphs", "similarity", "training"]
    df = results.merge(cost[keys + ["ms_per_query"]], on=keys, how="inner")
    if df.empty:
        return None
    groups = list(df.groupby(["dataset", "variant"], sort=False))
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 3.6), squeeze=False)
    for ax, ((ds, variant), g) in zip(axes[0], groups):
        for mode, gm in g.groupby("mode", sort=False):
            ax.scatter(gm["ms_per_query"], gm["mR"], label=mode.upper(), s=22)
        ax.set_xscale("log")
        ax.set_xlabel("inference ms per query")
        ax.set_ylabel("mR (%)")
        ax.set_title(f"{ds} / {variant}", fontsize=10)
        ax.legend(fontsize=7)
    return figure_uri(fig)


def _example_cells(results: pd.DataFrame) -> list[dict[str, Any]]:
    """V2V of the first backbone, then the best cell (highest mR) of every other mode, as results rows."""
    out = []
    for mode, g in results.groupby("mode", sort=False):
        if mode == "v2v":
            out.insert(0, g.iloc[0].to_dict())
        elif g["mR"].notna().any():
            out.append(g.loc[g["mR"].idxmax()].to_dict())
    return out


class _Graphs:
    """Query graphs and image graphs of one dataset (from the run's generated/ folder or ground truth)."""

    def __init__(self, run_dir: Path, ds: Any) -> None:
        self.folder = run_dir / "generated" / ds.name
        self.ds = ds
        self._cache: dict[str, dict[str, str]] = {}

    def _outputs(self, task: str) -> dict[str, str]:
        if task not in self._cache:
            import pyarrow.parquet as pq

            path = self.folder / f"{task}.parquet"
            t = pq.read_table(path).to_pylist() if path.exists() else []
            self._cache[task] = {r["owner_id"]: r["output"] for r in t if r.get("output")}
        return self._cache[task]

    def query(self, caption_id: str) -> Any:
        from rsretrieval.graphs.schema import TextGraph
        from rsretrieval.graphs.elements import text_graph_elements

        raw = self._outputs("text_graph").get(caption_id)
        return text_graph_elements(TextGraph.model_validate_json(raw)) if raw else None

    def image(self, image_id: str, source: str) -> Any:
        from rsretrieval.graphs.elements import image_graph_elements
        from rsretrieval.graphs.schema import ImageSceneGraph

        if source == "oracle":
            if "oracle" not in self._cache:
                g = self.ds.graphs.to_pylist() if self.ds.graphs is not None else []
                self._cache["oracle"] = {r["owner_id"]: r["graph"] for r in g
                                         if r["kind"] == "image_graph" and r["generator"] == "ground_truth"}
            raw = self._cache["oracle"].get(image_id)
        else:
            raw = self._outputs("image_graph").get(image_id)
        return image_graph_elements(ImageSceneGraph.model_validate_json(raw)) if raw else None


def _graph_html(title: str, el: Any) -> str:
    if el is None:
        return f"<div><b>{esc(title)}</b><br>(no graph)</div>"
    used = {i for e in el.edge_index for i in e}
    edges = list(zip(el.edge_index, el.edge_texts))
    edges.sort(key=lambda e: el.node_kinds[e[0][1]] == "attribute")  # relations first, then attributes
    items = [f"{esc(el.node_texts[s])} &rarr;<i>{esc(t)}</i>&rarr; {esc(el.node_texts[o])}" for (s, o), t in edges[:MAX_EDGES]]
    if len(el.edge_index) > MAX_EDGES:
        items.append(f"&hellip; {len(el.edge_index) - MAX_EDGES} more edges")
    items += [esc(n) for i, n in enumerate(el.node_texts) if i not in used]
    return (f"<div><b>{esc(title)}</b> ({len(el.node_texts)} nodes, {len(el.edge_index)} edges)<ul>"
            + "".join(f"<li>{x}</li>" for x in items) + "</ul></div>")


def _examples(run_dir: Path, cfg: BenchmarkConfig, results: pd.DataFrame, rcfg: ReportConfig) -> str:
    import pyarrow.parquet as pq

    from rsretrieval.data.registry import evaluation_split, load_dataset
    from rsretrieval.evaluation.cell_names import per_query_name

    parts = [f"<p class='meta'>{rcfg.queries} queries per dataset and caption variant, drawn at random "
             f"(seed {rcfg.seed}), the same for every method. Green border: the gold image. A rank counts every "
             f"image scored at least as high as the gold one (ties against the method).</p>"]
    n_back = results["backbone"].nunique()
    for dcfg in cfg.datasets:
        sub = results[results["dataset"] == dcfg.name]
        if sub.empty:
            continue
        try:
            ds = evaluation_split(load_dataset(dcfg, local_folder(cfg.cache_dir)), dcfg)
        except Exception as exc:  # noqa: BLE001 - the report must still render without the images
            parts.append(f"<p>{esc(dcfg.name)}: images unavailable ({esc(str(exc))})</p>")
            continue
        uris = dict(zip(ds.images["image_id"].to_pylist(), ds.images["uri"].to_pylist()))
        texts = dict(zip(ds.captions["caption_id"].to_pylist(), ds.captions["text"].to_pylist()))
        graphs, thumbs = _Graphs(run_dir, ds), {}

        def thumb(iid: str) -> str:
            if iid not in thumbs:
                thumbs[iid] = thumbnail_uri(uris[iid], rcfg.thumbnail_px)
            return thumbs[iid]

        for variant, vg in sub.groupby("variant", sort=False):
            cells = _example_cells(vg)
            per_query = {}
            for c in cells:
                path = run_dir / "per_query" / f"{per_query_name(c)}.parquet"
                if path.exists():
                    per_query[id(c)] = pq.read_table(path).to_pandas().set_index("query_id")
            if not per_query:
                continue
            first = next(iter(per_query.values()))
            qids = sorted(first.index)
            picked = random.Random(f"{rcfg.seed}/{dcfg.name}/{variant}").sample(qids, min(rcfg.queries, len(qids)))
            parts.append(f"<h3>{esc(dcfg.name)} / {esc(variant)}</h3>")
            for qid in picked:
                gold = first.loc[qid, "gold_image_id"]
                html = [f"<div class='q'><div class='qtext'>&ldquo;{esc(texts.get(qid, qid))}&rdquo; "
                        f"<span class='meta'>({esc(qid)})</span></div>",
                        f"<div class='row'><div class='label gold-tag'>gold image {esc(gold)}</div>"
                        f"<div class='thumb gold'><img src='{thumb(gold)}' alt='{esc(gold)}'></div></div>"]
                for c in cells:
                    pqf = per_query.get(id(c))
                    if pqf is None or qid not in pqf.index:
                        continue
                    r = pqf.loc[qid]
                    shown = "".join(
                        f"<div class='thumb{' gold' if iid == gold else ''}'><img src='{thumb(iid)}' alt='{esc(iid)}'>"
                        f"{score:.3f}</div>"
                        for iid, score in list(zip(r["topk_image_ids"], r["topk_scores"]))[:rcfg.top_k])
                    html.append(f"<div class='row'><div class='label'>{esc(_label(c, n_back))}<br>"
                                f"<span class='meta'>gold at rank {int(r['rank'])}</span></div>{shown}</div>")
                    if c["mode"] in ("g2g", "vg2vg"):
                        top1 = r["topk_image_ids"][0]
                        blocks = [_graph_html("query graph", graphs.query(qid)),
                                  _graph_html(f"gold image graph ({c['graphs']})", graphs.image(gold, c["graphs"]))]
                        if top1 != gold:
                            blocks.append(_graph_html(f"top-1 image graph ({top1})", graphs.image(top1, c["graphs"])))
                        html.append(f"<details open><summary>graphs of {esc(cell_label(c))}</summary>"
                                    f"<div class='graphs'>{''.join(blocks)}</div></details>")
                parts.append("".join(html) + "</div>")
    return "\n".join(parts)


def _csv_section(run_dir: Path, name: str, title: str) -> str:
    path = run_dir / name
    if not path.exists():
        return ""
    return f"<h2>{esc(title)}</h2><p class='meta'>{esc(name)}</p>" + frame_html(pd.read_csv(path))


def _findings_section(run_dir: Path, cfg: BenchmarkConfig, results: pd.DataFrame) -> str:
    """The findings table (does each thesis claim hold?) from ``findings.csv``, computed when missing."""
    from rsretrieval.evaluation.findings import compute_findings, findings_html, read_findings

    if (run_dir / "findings.csv").exists():
        return findings_html(read_findings(run_dir / "findings.csv"))
    if not any((run_dir / "per_query").glob("*.parquet")):
        return ""
    e = cfg.eval
    return findings_html(compute_findings(results, run_dir / "per_query", e.confidence, e.bootstrap_resamples or 1000,
                                          e.bootstrap_seed))


def build_report(run_dir: Path, rcfg: ReportConfig | None = None, out: Path | None = None) -> Path:
    """Write ``report.html`` (or ``out``) for the run in ``run_dir``; returns its path."""
    import json

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    rcfg = rcfg or cfg.report
    results = pd.read_csv(run_dir / "results.csv")
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").exists() else {}
    notes = _footnotes(run_dir)
    caveats = [n for n in notes if any(w in n for w in ("synthetic", "simulated", "oracle", "stand-in", "rs-tiny"))]
    body = [f"<h1>rsretrieval run <code>{esc(cfg.run_name)}</code></h1>",
            f"<p class='meta'>{len(results)} cells; datasets {esc(', '.join(d.name for d in cfg.datasets))}; backbones "
            f"{esc(', '.join(b.name for b in cfg.backbones))}; modes {esc(', '.join(cfg.modes))}; wall time "
            f"{summary.get('seconds', float('nan')):.0f} s; MLflow run {esc(str(summary.get('mlflow_run_id')))}</p>"]
    if caveats:
        body.append("<div class='banner'><b>Read these numbers with their caveats:</b><ul>"
                    + "".join(f"<li>{esc(c)}</li>" for c in caveats) + "</ul></div>")
    body.append(_findings_section(run_dir, cfg, results))
    body.append("<h2>Results</h2>")
    if (run_dir / "tables.md").exists():
        body.append(markdown_html((run_dir / "tables.md").read_text(), shift=2))
    body.append(f"<h3>mR per method</h3><img src='{_mr_plot(results)}' alt='mR per method'>")
    cost_path = run_dir / "cost_summary.csv"
    if cost_path.exists():
        uri = _cost_plot(results, pd.read_csv(cost_path))
        if uri:
            body.append(f"<h3>Accuracy against latency</h3><img src='{uri}' alt='mR against ms per query'>")
    body.append("<h2>Example retrievals</h2>" + _examples(run_dir, cfg, results, rcfg))
    if (run_dir / "cost.md").exists():
        body.append("<h2>Cost and latency</h2>" + markdown_html((run_dir / "cost.md").read_text(), shift=2))
    body += [_csv_section(run_dir, "generation.csv", "Generation"), _csv_section(run_dir, "training.csv", "Graph model training"),
             _csv_section(run_dir, "graph_stats.csv", "Graph statistics (collision rate A.2.3, sizes)")]
    for png in sorted(run_dir.glob("*.png")):
        body.append(f"<h3>{esc(png.name)}</h3><img src='{file_uri(png)}' alt='{esc(png.name)}' style='max-width:100%'>")
    body.append("<h2>All cells</h2>" + frame_html(results.drop(columns=["notes"], errors="ignore")))
    body.append("<h2>Notes</h2><ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    out = Path(out) if out else run_dir / "report.html"
    out.write_text("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
                   f"<title>rsretrieval {esc(cfg.run_name)}</title><style>{CSS}</style></head><body>"
                   + "\n".join(b for b in body if b) + "</body></html>", encoding="utf-8")
    return out
