"""The four generation tasks of the thesis (appendix A.1): prompts, wire schemas, validation.

Each task pairs a verbatim, versioned system prompt with the schema Gemini must answer in and a
parser that validates the answer into the project's own types. The wire schemas use lists where
the project's types use maps: the Gemini Developer API rejects ``additionalProperties`` in a
``response_schema``, so ``object_counts`` travels as ``[{object, count}]`` and attributes as
``[{name, value}]``.

| task | input | prompt | output |
| --- | --- | --- | --- |
| fine_grained_caption | image | A.1.1 | plain text |
| object_counts | image | A.1.2 (step 1) | ObjectCounts |
| image_graph | image + step-1 counts | A.1.2 (step 2) | ImageSceneGraph |
| text_graph | caption | A.1.3 | TextGraph |
| text_scenes | caption | A.1.4 | list of scenes (possibly empty) |
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, Field, ValidationError

from rsretrieval.graphs.schema import ImageSceneGraph, ObjectCounts, Relation, SceneObject, TextGraph

PROMPT_DIR = Path(__file__).parent / "prompts"


class InvalidResponse(ValueError):
    """A response that does not satisfy the task's schema (re-asked, then recorded as failed)."""


# --- wire schemas (what Gemini is asked to return) -------------------------------------------

class _Count(BaseModel):
    object: str = Field(description="Object type, e.g. 'building'")
    count: int = Field(description="Exact count, or -1 when unclear or very large")


class _Attribute(BaseModel):
    name: str = Field(description="Attribute type, e.g. 'color'")
    value: str = Field(description="Attribute value, e.g. 'white'")


class _Object(BaseModel):
    id: int
    name: str
    attributes: list[_Attribute]


class WireObjectCounts(BaseModel):
    object_counts: list[_Count]


class WireImageGraph(BaseModel):
    scene: str = Field(description="Global scene node, e.g. 'Airport'")
    object_counts: list[_Count]
    objects: list[_Object]
    relations: list[Relation]


class TextScenes(BaseModel):
    scenes: list[str] = Field(max_length=6, description="At most 6 self-contained scenes; empty for a short caption")


# --- tasks ------------------------------------------------------------------------------------

def load_prompt(task: str, section: str, version: str) -> str:
    path = PROMPT_DIR / f"{task}.{section}.{version}.txt"
    return path.read_text(encoding="utf-8").strip()


@dataclass(frozen=True)
class GenerationTask:
    """One task: its prompt, its input kind and how its answers are validated."""

    name: str
    section: str
    version: str
    input_kind: Literal["image", "text"]
    wire_schema: type[BaseModel] | None  # None: plain text answer
    parse: Callable[[str], Any]  # raw response text -> validated project object (raises InvalidResponse)

    @property
    def prompt_version(self) -> str:
        return f"{self.section}.{self.version}"

    @property
    def system_prompt(self) -> str:
        return load_prompt(self.name, self.section, self.version)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, json.JSONDecodeError) as exc:
        raise InvalidResponse(f"not valid JSON: {exc}") from exc


def _validated(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidResponse(f"schema violation: {exc.errors()[0]['msg']} at {exc.errors()[0]['loc']}") from exc


def parse_caption(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise InvalidResponse("empty caption")
    return text


def parse_object_counts(text: str) -> ObjectCounts:
    wire = _validated(WireObjectCounts, _json(text))
    counts = {c.object: c.count for c in wire.object_counts}
    try:
        return ObjectCounts(object_counts=counts)
    except ValidationError as exc:
        raise InvalidResponse(f"invalid counts: {exc.errors()[0]['msg']}") from exc


def parse_image_graph(text: str) -> ImageSceneGraph:
    wire = _validated(WireImageGraph, _json(text))
    try:
        return ImageSceneGraph(
            scene=wire.scene, object_counts={c.object: c.count for c in wire.object_counts},
            objects=[SceneObject(id=o.id, name=o.name, attributes={a.name: a.value for a in o.attributes})
                     for o in wire.objects],
            relations=wire.relations)
    except ValidationError as exc:
        raise InvalidResponse(f"invalid graph: {exc.errors()[0]['msg']}") from exc


def parse_text_graph(text: str) -> TextGraph:
    return _validated(TextGraph, _json(text))


def parse_text_scenes(text: str) -> list[str]:
    return [s.strip() for s in _validated(TextScenes, _json(text)).scenes if s.strip()]


TASKS: dict[str, GenerationTask] = {
    t.name: t for t in [
        GenerationTask("fine_grained_caption", "A.1.1", "v1", "image", None, parse_caption),
        GenerationTask("object_counts", "A.1.2", "v1", "image", WireObjectCounts, parse_object_counts),
        GenerationTask("image_graph", "A.1.2", "v1", "image", WireImageGraph, parse_image_graph),
        GenerationTask("text_graph", "A.1.3", "v1", "text", TextGraph, parse_text_graph),
        GenerationTask("text_scenes", "A.1.4", "v1", "text", TextScenes, parse_text_scenes),
    ]
}


def get_task(name: str) -> GenerationTask:
    if name not in TASKS:
        raise KeyError(f"unknown generation task {name!r}; known: {sorted(TASKS)}")
    return TASKS[name]


def to_json(obj: Any) -> str:
    """A parsed answer as JSON for the store (pydantic models, lists of str, str)."""
    if isinstance(obj, BaseModel):
        return obj.model_dump_json()
    return json.dumps(obj)
