"""Scene-graph schemas (pydantic), following the thesis' prompts (appendix A.1.2 and A.1.3): image graphs
and the text graphs of captions (``TextGraph``).

``ImageSceneGraph`` is what the two-step image-graph prompt asks Gemini for: object counts
(-1 = uncountable / too many), objects with ids and at least one attribute, relations with
subject/object ids, and a global scene hyper-node (id ``SCENE_NODE_ID``). Ground-truth graphs of
the synthetic dataset use the same schema so generated and oracle graphs are interchangeable.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

SCENE_NODE_ID = -1  # id of the global scene hyper-node in relations


class ObjectCounts(BaseModel):
    """Step 1 of A.1.2: object type -> count, -1 for uncountable or very many."""

    object_counts: dict[str, int] = Field(description="Object type -> count; -1 when uncountable or too many")

    @model_validator(mode="after")
    def _counts_valid(self) -> "ObjectCounts":
        bad = {k: v for k, v in self.object_counts.items() if v < -1 or v == 0}
        if bad:
            raise ValueError(f"object_counts must be positive or -1, got {bad}")
        return self


class SceneObject(BaseModel):
    """One object or semantic region node (one node per type, its count as an attribute)."""

    id: int = Field(description="Consistent id used by relations; >= 0")
    name: str = Field(description="Object type, e.g. 'storage tank', or region, e.g. 'bare ground'")
    attributes: dict[str, str] = Field(
        default_factory=dict, description="Attribute type -> value, e.g. {'color': 'white', 'count': '11'}"
    )


class Relation(BaseModel):
    """A directed, labelled edge between two nodes (A.1.2 'Example Relation Entry')."""

    subject: str = Field(description="Subject node name")
    relation: str = Field(description="Specific relation, e.g. 'adjacent_to', 'on', 'inside'")
    object: str = Field(description="Object node name")
    subject_id: int = Field(description="Subject node id (SCENE_NODE_ID for the scene hyper-node)")
    object_id: int = Field(description="Object node id (SCENE_NODE_ID for the scene hyper-node)")


class ImageSceneGraph(BaseModel):
    """Step 2 of A.1.2: the scene graph of one image."""

    scene: str = Field(description="Global scene hyper-node label, e.g. 'Airport', 'Industrial Area'")
    object_counts: dict[str, int] = Field(description="Same dictionary as in the counting step")
    objects: list[SceneObject] = Field(default_factory=list, description="Object/region nodes")
    relations: list[Relation] = Field(default_factory=list, description="Edges between nodes")

    @model_validator(mode="after")
    def _ids_consistent(self) -> "ImageSceneGraph":
        ids = [o.id for o in self.objects]
        if len(ids) != len(set(ids)):
            raise ValueError(f"object ids must be unique, got {ids}")
        known = set(ids) | {SCENE_NODE_ID}
        for r in self.relations:
            if r.subject_id not in known or r.object_id not in known:
                raise ValueError(f"relation {r.model_dump()} refers to an unknown object id")
            if r.subject_id == r.object_id:
                raise ValueError(f"relation {r.model_dump()} uses the same node as subject and object")
        return self


class TextGraphNode(BaseModel):
    name: str = Field(description="Normalised object name or attribute value")
    type: Literal["object", "attribute"]


class TextGraphEdge(BaseModel):
    subject: str
    relation: str = Field(description="Exact relation phrase from the text, or the attribute type")
    object: str


class TextGraph(BaseModel):
    """A.1.3: object and attribute nodes with labelled, directed edges; attributes never subjects."""

    nodes: list[TextGraphNode]
    edges: list[TextGraphEdge]

    @field_validator("edges")
    @classmethod
    def _edges_refer_to_nodes(cls, edges: list[TextGraphEdge], info: Any) -> list[TextGraphEdge]:
        nodes = {n.name: n.type for n in info.data.get("nodes", [])}
        for e in edges:
            if e.subject not in nodes or e.object not in nodes:
                raise ValueError(f"edge {e.model_dump()} refers to a node that is not listed")
            if nodes[e.subject] == "attribute":
                raise ValueError(f"edge {e.model_dump()}: an attribute cannot be a subject (A.1.3)")
        return edges
