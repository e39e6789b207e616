"""Cost and latency per matching mode and per step (thesis sec. 6.6.2, Tables 13-14).

The benchmark records every stage it runs in a :class:`StageLedger` (embedding, cropping, graph and
scene generation, node embedding) with its seconds, item count, tokens and cost; scoring and ranking
seconds come with each results row. :func:`cost_steps` then lays out, for every results cell, the
steps of its mode in the order of Table 13: **data preparation** (image side, once per corpus) and
**inference** (query side). Inference stages that serve several cells (e.g. embedding every caption
of both variants) are charged to a cell in proportion to its queries, so ``ms_per_query`` is what one
more query costs. A stage that came from the cache reports the seconds recorded when it was
computed (``cached`` says so); generation reports the tokens and dollars of the whole stored set,
paid in this run or earlier.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pandas as pd

from rsretrieval.evaluation.tables import KEY_COLUMNS, markdown_table

PREP, INFER = "data preparation", "inference"


class Step(NamedTuple):
    """One row of Table 13: which side, what it does, and the ledger stage that measured it."""

    side: str
    label: str
    stage: str  # ledger key; "score" / "rank" come from the results row
    per_backbone: bool  # the stage depends on the image backbone
    shared_by_queries: bool  # inference stage run once for more queries than this cell's


@dataclass
class StageLedger:
    """What each stage of a run cost. Keyed by (dataset, backbone or '-', stage); a later entry of a key
    replaces the earlier one (a stage rerun for another cell measures the same work)."""

    rows: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)

    def add(self, dataset: str, stage: str, seconds: float, items: int, *, backbone: str = "-",
            cached: bool = False, calls: int = 0, tokens_in: int = 0, tokens_out: int = 0, cost_usd: float = 0.0,
            detail: str = "") -> None:
        """Record one stage: ``seconds`` of compute (recorded at compute time when ``cached``) over ``items``."""
        self.rows[(dataset, backbone, stage)] = {
            "dataset": dataset, "backbone": backbone, "stage": stage, "seconds": float(seconds), "items": int(items),
            "cached": bool(cached), "calls": int(calls), "tokens_in": int(tokens_in), "tokens_out": int(tokens_out),
            "cost_usd": float(cost_usd), "detail": detail}

    def get(self, dataset: str, backbone: str, stage: str) -> dict[str, Any] | None:
        return self.rows.get((dataset, backbone, stage))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(list(self.rows.values()))


def mode_steps(row: dict[str, Any]) -> list[Step]:
    """The Table-13 steps of one results row (its mode, crops, graph source, node embeddings, variant)."""
    mode, crops, graphs = row["mode"], row.get("crops", "-"), row.get("graphs", "-")
    emb = "trained" if row.get("training") == "trained" else "vanilla"
    embed_images = Step(PREP, "embed images", "embed:images", True, False)
    crop = [Step(PREP, f"crop images ({crops})", f"crop:{crops}", False, False),
            Step(PREP, "embed crops", f"embed:crops:{crops}", True, False)]
    embed_captions = Step(INFER, "embed query captions", "embed:captions", True, True)
    scenes = [Step(INFER, "generate text scenes", "gen:text_scenes", False, True),
              Step(INFER, "embed text scenes", "embed:text_scenes", True, True)]
    graphs_prep = [Step(PREP, f"image graphs ({graphs})", f"gen:image_graph:{graphs}", False, False),
                   Step(PREP, f"embed image graph nodes ({emb})", f"nodes:image:{graphs}:{emb}", False, False)]
    query_graph = Step(INFER, "generate query graphs", "gen:text_graph", False, True)
    query_nodes = Step(INFER, f"embed query graph nodes ({emb})", f"nodes:query:{row['variant']}:{emb}:{graphs}", False, True)
    score_label = {"v2v": "cosine similarity", "g2g": f"graph matching ({row.get('similarity')})",
                   "vg2vg": f"graph matching ({row.get('similarity')}) + cosine"}.get(mode, "late interaction")
    tail = [Step(INFER, score_label, "score", False, False), Step(INFER, "rank", "rank", False, False)]
    steps = {
        "v2v": [embed_images, embed_captions],
        "v2s": [*crop, embed_captions],
        "s2v": [embed_images, *scenes],
        "s2s": [*crop, *scenes],
        "g2g": [*graphs_prep, query_graph, query_nodes],
        "vg2vg": [embed_images, *graphs_prep, query_graph, embed_captions, query_nodes],
    }[mode]
    return steps + tail


def cost_steps(results: pd.DataFrame, ledger: StageLedger) -> pd.DataFrame:
    """cost.csv: one row per results cell x step with seconds charged to the cell, tokens and cost."""
    out = []
    for row in results.to_dict("records"):
        keys = {k: row.get(k) for k in KEY_COLUMNS}
        for no, step in enumerate(mode_steps(row), 1):
            rec: dict[str, Any]
            if step.stage in ("score", "rank"):
                seconds = row.get(f"{step.stage}_seconds")
                rec = {"seconds": float(seconds) if seconds == seconds and seconds is not None else float("nan"),
                       "items": row["n_queries"], "cached": False, "calls": 0, "tokens_in": 0, "tokens_out": 0,
                       "cost_usd": 0.0, "detail": ""}
            else:
                found = ledger.get(row["dataset"], row["backbone"] if step.per_backbone else "-", step.stage)
                rec = dict(found) if found else {"seconds": float("nan"), "items": 0, "cached": False, "calls": 0,
                                                 "tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0, "detail": "not measured"}
            share = 1.0
            if step.shared_by_queries and rec["items"]:
                share = min(1.0, row["n_queries"] / rec["items"])
            out.append({**keys, "step_no": no, "side": step.side, "step": step.label, "stage": step.stage,
                        "seconds": rec["seconds"] * share, "stage_seconds": rec["seconds"], "stage_items": rec["items"],
                        "cached": rec["cached"], "calls": round(rec["calls"] * share),
                        "tokens": round((rec["tokens_in"] + rec["tokens_out"]) * share),
                        "cost_usd": rec["cost_usd"] * share, "detail": rec["detail"], "n_queries": row["n_queries"],
                        "n_images": row["n_images"]})
    return pd.DataFrame(out)


def cost_summary(steps: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: data-preparation and inference totals (Table 14's KPI columns) and ms per query."""
    if steps.empty:
        return pd.DataFrame()
    rows = []
    for keys, g in steps.groupby(KEY_COLUMNS, sort=False, dropna=False):
        prep, inf = g[g["side"] == PREP], g[g["side"] == INFER]
        n = int(g["n_queries"].iloc[0])
        by = {s: float(inf.loc[inf["stage"] == s, "seconds"].sum()) for s in ("score", "rank")}
        transform = float(inf.loc[inf["stage"].str.startswith("gen:"), "seconds"].sum())
        embed = float(inf["seconds"].sum()) - transform - by["score"] - by["rank"]
        total = float(inf["seconds"].sum())
        rows.append({**dict(zip(KEY_COLUMNS, keys)), "n_queries": n, "n_images": int(g["n_images"].iloc[0]),
                     "prep_seconds": float(prep["seconds"].sum()), "prep_tokens": int(prep["tokens"].sum()),
                     "prep_cost_usd": float(prep["cost_usd"].sum()), "query_transform_seconds": transform,
                     "query_embed_seconds": embed, "score_seconds": by["score"], "rank_seconds": by["rank"],
                     "inference_seconds": total, "ms_per_query": 1000.0 * total / max(1, n),
                     "inference_tokens": int(inf["tokens"].sum()), "inference_cost_usd": float(inf["cost_usd"].sum()),
                     "cached_steps": int(g["cached"].sum())})
    return pd.DataFrame(rows)


def cell_label(row: dict[str, Any]) -> str:
    """'V2V', 'S2S (uniform)', 'VG2VG GMN trained (oracle)': the method as the thesis' tables name it."""
    name = row["mode"].upper()
    if row.get("crops", "-") != "-":
        name += f" ({row['crops']})"
    if row.get("graphs", "-") != "-":
        name += f" {str(row['similarity']).upper() if row['similarity'] == 'gmn' else row['similarity'].capitalize()}" \
                f" {row['training']} ({row['graphs']})"
    return name


def cost_markdown(steps: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    """Table 13 (steps per method) and Table 14 (seconds per step group, tokens, $) as Markdown lines."""
    lines = ["# Cost and latency per method (thesis Tables 13-14)", "",
             "## Table 13: pipeline steps per method", ""]
    seen: dict[str, tuple[str, str]] = {}
    for _, g in steps.groupby(KEY_COLUMNS, sort=False, dropna=False):
        row = g.iloc[0].to_dict()
        label = row["mode"].upper()
        if label in seen:
            continue
        prep = [s for s, side in zip(g["step"], g["side"]) if side == PREP]
        inf = [s for s, side in zip(g["step"], g["side"]) if side == INFER]
        seen[label] = ("; ".join(f"{i}. {s}" for i, s in enumerate(prep, 1)), "; ".join(f"{i}. {s}" for i, s in enumerate(inf, 1)))
    lines += markdown_table(pd.DataFrame([{"method": k, "data preparation": p, "inference": i} for k, (p, i) in seen.items()]))
    lines += ["", "## Table 14: time per step, tokens and cost", "",
              "Seconds for all queries of the cell; inference stages shared with other cells are charged per query. "
              "prep = image side (once per corpus), transform = query graph / text scene generation, "
              "embed = query embedding, score and rank = the search itself.", ""]
    for (ds, variant, backbone), g in summary.groupby(["dataset", "variant", "backbone"], sort=False):
        lines += [f"### {ds} / {variant} / {backbone}", ""]
        t = g.assign(method=[cell_label(r) for r in g.to_dict("records")])
        t = t.rename(columns={"prep_seconds": "prep s", "query_transform_seconds": "transform s", "query_embed_seconds": "embed s",
                              "score_seconds": "score s", "rank_seconds": "rank s", "inference_seconds": "inference s",
                              "ms_per_query": "ms/query", "inference_tokens": "tokens", "inference_cost_usd": "$ (query side)",
                              "prep_cost_usd": "$ (prep)"})
        t["$ (query side)"] = t["$ (query side)"].map(lambda v: f"{v:.4f}")
        t["$ (prep)"] = t["$ (prep)"].map(lambda v: f"{v:.4f}")
        lines += markdown_table(t, ["method", "n_queries", "prep s", "$ (prep)", "transform s", "embed s", "score s",
                                    "rank s", "inference s", "ms/query", "tokens", "$ (query side)"]) + [""]
    cached = int(steps["cached"].sum())
    if cached:
        lines.append(f"{cached} step rows came from the cache: their seconds are those recorded when they were computed.")
    return lines
