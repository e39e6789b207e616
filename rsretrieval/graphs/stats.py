"""Graph statistics: graph collision rate (thesis A.2.3, Table 19) and graph sizes (Figure 20).

GCR, as A.2.3 describes it: extract the relation triplets (subject, relation, object) of each graph,
sort them, hash them (SHA-256), count the distinct hashes; duplicates = n_graphs - n_unique and
GCR = duplicates / n_graphs * 100. The match is exact (texts as written, case included).

Which edges count: A.2.3 says "relation triplets"; in these graphs attribute types are edge labels
too (``building -count-> several``), so ALL labelled edges count: relations, object -> attribute
edges and, for image graphs, edges to the scene hyper-node (see
:func:`rsretrieval.graphs.elements.image_graph_elements`). A graph's triplets are a multiset (a
repeated edge counts twice). Nodes without edges are not triplets, so e.g. every caption graph with
only isolated nodes hashes the same (``include_isolated`` adds ``(name, "", "")`` for them instead).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Iterable, Sequence

import numpy as np

from rsretrieval.graphs.schema import TextGraph
from rsretrieval.graphs.elements import GraphElements, graph_elements
from rsretrieval.graphs.schema import ImageSceneGraph

AnyGraph = ImageSceneGraph | TextGraph | GraphElements


def graph_triplets(g: AnyGraph, include_isolated: bool = False) -> list[tuple[str, str, str]]:
    """The (subject, relation, object) texts of every labelled edge of ``g``, in edge order."""
    el = graph_elements(g)
    triplets = el.triplets()
    if include_isolated:
        linked = {i for e in el.edge_index for i in e}
        triplets += [(t, "", "") for i, t in enumerate(el.node_texts) if i not in linked]
    return triplets


def graph_hash(triplets: Iterable[tuple[str, str, str]]) -> str:
    """SHA-256 of the sorted triplets; JSON-serialised so no separator can make two lists collide."""
    canon = json.dumps(sorted(tuple(t) for t in triplets), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


def collision_stats(graphs: Sequence[AnyGraph], include_isolated: bool = False) -> dict[str, float | int]:
    """``{"n_graphs", "n_unique", "n_duplicates", "gcr"}`` with gcr in percent (A.2.3)."""
    hashes = [graph_hash(graph_triplets(g, include_isolated)) for g in graphs]
    n, unique = len(hashes), len(set(hashes))
    return {"n_graphs": n, "n_unique": unique, "n_duplicates": n - unique,
            "gcr": (n - unique) / n * 100 if n else 0.0}


def graph_collision_rate(graphs: Sequence[AnyGraph], include_isolated: bool = False) -> float:
    """Graph collision rate in percent: duplicates / n_graphs * 100 (0 for no graphs)."""
    return float(collision_stats(graphs, include_isolated)["gcr"])


def _summary(values: list[int]) -> dict[str, object]:
    if not values:
        return {"mean": 0.0, "median": 0.0, "min": 0, "max": 0, "histogram": {}}
    a = np.asarray(values)
    return {"mean": float(a.mean()), "median": float(np.median(a)), "min": int(a.min()), "max": int(a.max()),
            "histogram": {int(k): int(v) for k, v in sorted(Counter(values).items())}}


def size_stats(graphs: Sequence[AnyGraph]) -> dict[str, object]:
    """Nodes and edges per graph: mean, median, min, max and histogram (size -> number of graphs).

    Sizes are of the elements (image graphs: scene + objects + attribute values), before any
    placeholder node is added to empty graphs; ``n_empty`` counts graphs without nodes.
    """
    els = [graph_elements(g) for g in graphs]
    return {"n_graphs": len(els), "n_empty": sum(e.node_count == 0 for e in els),
            "nodes": _summary([e.node_count for e in els]), "edges": _summary([e.edge_count for e in els])}
