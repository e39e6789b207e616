"""Graph-agnostic element lists: node texts, edges and edge texts (thesis secs. 4.2.1, 4.3.1, 5.2.2).

Both graph kinds, the image scene graph (A.1.2, :class:`ImageSceneGraph`) and the caption graph (A.1.3,
:class:`TextGraph`), become one :class:`GraphElements`: the texts that the vanilla embedding model of
sec. 5.2.2 passes "through a BERT model", plus directed edges between node positions.

Image graphs (``image_graph_elements``), in this node order:

1. the global scene hyper-node, text = the scene label (``"Airport"``);
2. one node per object / semantic region, in listed order, text = its name (``"storage tank"``);
3. one node per attribute VALUE of each object (not shared between objects: sec. 4.2.1 connects "a
   single node with the count as an attribute" to each object), in the object's attribute order,
   text = the bare value, as the A.1.3 text graphs write it (``"white"``, ``"11"``), so that query
   and document attribute nodes compare value to value. A count of ``-1`` (uncountable / too many,
   A.1.2) becomes ``"many"``, the word the caption parser uses for vague large counts.

Edges: object -> attribute value labelled with the attribute type (``"color"``, ``"count"``), then the
graph's relations subject -> object (ids, ``SCENE_NODE_ID`` = the hyper-node, so the ``inside`` /
``part_of`` edges to the scene are plain relations), labels with underscores as spaces
(``"adjacent_to"`` -> ``"adjacent to"``), as captions write them. Texts are stripped, not lower-cased
(MiniLM is uncased; graph collision rates are exact, A.2.3).

Text graphs (``text_graph_elements``): one node per distinct node name in listed order (edges refer to
names, so a repeated name is one node), edges in listed order with their relation text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rsretrieval.graphs.schema import TextGraph
from rsretrieval.graphs.schema import SCENE_NODE_ID, ImageSceneGraph

NodeKind = Literal["scene", "object", "attribute"]
UNCOUNTABLE = "many"  # text of a -1 count (uncountable / very many), as the caption parser writes vague counts


@dataclass(frozen=True)
class GraphElements:
    """Nodes and directed, labelled edges of one graph, as texts.

    ``edge_index[k] = (source, target)`` are positions in ``node_texts``; ``edge_texts[k]`` is edge k's
    label. ``node_kinds`` (same length as ``node_texts``) tells scene / object / attribute nodes apart.
    """

    node_texts: list[str]
    edge_index: list[tuple[int, int]] = field(default_factory=list)
    edge_texts: list[str] = field(default_factory=list)
    node_kinds: list[NodeKind] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.node_kinds:  # callers that do not care get "object" for every node
            object.__setattr__(self, "node_kinds", ["object"] * len(self.node_texts))
        if len(self.node_kinds) != len(self.node_texts):
            raise ValueError(f"{len(self.node_kinds)} node kinds for {len(self.node_texts)} nodes")
        if len(self.edge_texts) != len(self.edge_index):
            raise ValueError(f"{len(self.edge_texts)} edge texts for {len(self.edge_index)} edges")
        n = len(self.node_texts)
        bad = [e for e in self.edge_index if not (0 <= e[0] < n and 0 <= e[1] < n)]
        if bad:
            raise ValueError(f"edges {bad[:3]} refer to nodes outside 0..{n - 1}")

    @property
    def node_count(self) -> int:
        return len(self.node_texts)

    @property
    def edge_count(self) -> int:
        return len(self.edge_index)

    def triplets(self) -> list[tuple[str, str, str]]:
        """Every edge as (subject text, relation text, object text), in edge order."""
        return [(self.node_texts[s], r, self.node_texts[o]) for (s, o), r in zip(self.edge_index, self.edge_texts)]


def _label(text: str) -> str:
    """Relation / attribute-type label as written in captions: underscores as spaces, no padding."""
    return " ".join(text.replace("_", " ").split())


def _value(key: str, value: str) -> str:
    value = value.strip()
    if _label(key) == "count" and value == "-1":
        return UNCOUNTABLE
    return value


def image_graph_elements(g: ImageSceneGraph, counts_from_object_counts: bool = True,
                         link_scene: bool = False) -> GraphElements:
    """Elements of an image scene graph (node order and texts: see the module docstring).

    ``counts_from_object_counts``: an object without a ``count`` attribute whose name has a positive
    entry in ``g.object_counts`` gets that count as a value node (sec. 4.2.1 "Object Count"; the A.1.2
    answer keeps counts in ``object_counts``). A -1 entry adds nothing: a region such as "bare ground"
    is uncountable, not "many". ``link_scene``: add a ``part of`` edge from every object that no
    relation connects to the scene hyper-node (off by default: elements follow the graph as given).
    """
    texts: list[str] = [g.scene.strip()]
    kinds: list[NodeKind] = ["scene"]
    pos = {SCENE_NODE_ID: 0}
    for o in g.objects:
        pos[o.id] = len(texts)
        texts.append(o.name.strip())
        kinds.append("object")
    edges: list[tuple[int, int]] = []
    labels: list[str] = []
    for o in g.objects:
        attrs = dict(o.attributes)
        if counts_from_object_counts and not any(_label(k) == "count" for k in attrs):
            if g.object_counts.get(o.name, 0) > 0:
                attrs["count"] = str(g.object_counts[o.name])
        for key, value in attrs.items():
            value = _value(key, value)
            if not value:  # an empty value says nothing; no node for it
                continue
            edges.append((pos[o.id], len(texts)))
            labels.append(_label(key))
            texts.append(value)
            kinds.append("attribute")
    for r in g.relations:
        edges.append((pos[r.subject_id], pos[r.object_id]))
        labels.append(_label(r.relation))
    if link_scene:
        linked = {r.subject_id for r in g.relations if r.object_id == SCENE_NODE_ID}
        linked |= {r.object_id for r in g.relations if r.subject_id == SCENE_NODE_ID}
        for o in g.objects:
            if o.id not in linked:
                edges.append((pos[o.id], 0))
                labels.append("part of")
    return GraphElements(texts, edges, labels, kinds)


def text_graph_elements(g: TextGraph) -> GraphElements:
    """Elements of a caption graph: one node per distinct name, edges with their relation text."""
    pos: dict[str, int] = {}
    texts: list[str] = []
    kinds: list[NodeKind] = []
    for n in g.nodes:
        if n.name not in pos:
            pos[n.name] = len(texts)
            texts.append(n.name.strip())
            kinds.append("attribute" if n.type == "attribute" else "object")
    edges = [(pos[e.subject], pos[e.object]) for e in g.edges]
    labels = [_label(e.relation) for e in g.edges]
    return GraphElements(texts, edges, labels, kinds)


def graph_elements(g: ImageSceneGraph | TextGraph | GraphElements) -> GraphElements:
    """Elements of any supported graph (default options); ``GraphElements`` pass through."""
    if isinstance(g, GraphElements):
        return g
    if isinstance(g, ImageSceneGraph):
        return image_graph_elements(g)
    if isinstance(g, TextGraph):
        return text_graph_elements(g)
    raise TypeError(f"expected ImageSceneGraph, TextGraph or GraphElements, got {type(g).__name__}")
