"""Names of a results row's cell: for logs, MLflow metric keys and per-query file stems (no heavy imports:
the findings and the report use them without torch)."""

from __future__ import annotations

from typing import Any


def cell_name(keys: dict[str, Any]) -> str:
    """'v2v', 's2v', 'v2s-uniform', or for graph modes 'g2g-hungarian-vanilla-oracle': the mode with
    what distinguishes its cells."""
    parts = [keys["mode"]]
    if keys.get("crops", "-") != "-":
        parts.append(keys["crops"])
    if keys.get("graphs", "-") != "-":
        parts += [keys["similarity"], keys["training"], keys["graphs"]]
    return "-".join(parts)


def per_query_name(keys: dict[str, Any]) -> str:
    """File stem of a cell's per-query ranks: ``<dataset>__<variant>__<backbone>__<cell name>``."""
    return "__".join([keys["dataset"], keys["variant"], keys["backbone"], cell_name(keys)])
