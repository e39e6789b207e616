"""A simulated VLM: what Gemini might answer for a synthrs image, made from its ground-truth graph.

The embedded default has no API key, so graph modes on synthrs need image graphs from somewhere.
Using the ground truth unchanged would flatter every graph mode (the thesis' image graphs came from
Gemini and had errors), so this backend degrades it the way VLMs err on aerial images: small
objects are missed, counts are off by a little or reported as "too many" (-1), colours are named as a
similar colour, relations are missed. Deterministic per (seed, image id). Every output carries the
generator label ``simulated-vlm@v1`` and tables mark it "simulated"; it is not a model.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from rsretrieval.config import SimulatedVLMConfig
from rsretrieval.graphs.schema import SCENE_NODE_ID, ImageSceneGraph, ObjectCounts, Relation, SceneObject

NAME = "simulated-vlm@v1"
_SIMILAR_COLOUR = {"white": "light gray", "light gray": "white", "gray": "dark gray", "dark gray": "gray",
                   "red": "orange", "orange": "red", "blue": "dark blue", "dark blue": "blue", "green": "dark green",
                   "dark green": "green", "yellow": "beige", "beige": "yellow", "brown": "dark brown", "black": "dark gray"}


def _rng(seed: int, owner_id: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{NAME}|{seed}|{owner_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _is_small(o: SceneObject) -> bool:
    sizes = o.attributes.get("size", "")
    return bool(sizes) and all(s == "small" for s in sizes.split("/"))


def _noisy_count(c: int, cfg: SimulatedVLMConfig, rng: np.random.Generator) -> int:
    if c > cfg.many_threshold and rng.random() < 0.5:
        return -1
    if c > 1 and rng.random() < cfg.count_noise:
        err = int(rng.integers(1, cfg.count_max_error + 1)) * (1 if rng.random() < 0.5 else -1)
        return max(1, c + err)
    return c


def simulate_image_graph(truth: ImageSceneGraph, owner_id: str, cfg: SimulatedVLMConfig, seed: int = 0) -> ImageSceneGraph:
    """The ground-truth graph with simulated VLM errors (see module docstring)."""
    rng = _rng(seed, owner_id)
    objects: list[SceneObject] = []
    counts: dict[str, int] = {}
    for o in truth.objects:
        counted = "count" in o.attributes
        if counted and _is_small(o) and rng.random() < cfg.drop_small:
            continue  # missed: too small at the resolution the model sees
        attrs = dict(o.attributes)
        c = truth.object_counts.get(o.name, -1)
        if counted and c > 0:
            c = _noisy_count(c, cfg, rng)
            attrs["count"] = str(c)
        colour = attrs.get("color")
        if colour in _SIMILAR_COLOUR and rng.random() < cfg.colour_confusion:
            attrs["color"] = _SIMILAR_COLOUR[colour]
        counts[o.name] = c
        objects.append(SceneObject(id=o.id, name=o.name, attributes=attrs))
    kept = {o.id for o in objects} | {SCENE_NODE_ID}
    relations: list[Relation] = []
    for r in truth.relations:
        if r.subject_id not in kept or r.object_id not in kept:
            continue
        between_objects = SCENE_NODE_ID not in (r.subject_id, r.object_id)
        if between_objects and rng.random() < cfg.drop_relation:
            continue
        relations.append(r)
    return ImageSceneGraph(scene=truth.scene, object_counts=counts, objects=objects, relations=relations)


def simulate_object_counts(truth: ImageSceneGraph, owner_id: str, cfg: SimulatedVLMConfig, seed: int = 0) -> ObjectCounts:
    """Step 1 of A.1.2 as the simulated VLM answers it (the same errors as its graph)."""
    return ObjectCounts(object_counts=simulate_image_graph(truth, owner_id, cfg, seed).object_counts)


def _phrase(o: SceneObject, count: int) -> str:
    a = o.attributes
    words = [str(count) if count > 0 else "many" if "count" in a else ""]
    words += [a.get("size", "") if a.get("size") not in (None, "medium") else "", a.get("color", "") if a.get("color") != "mixed" else ""]
    name = o.name if count == 1 or "count" not in a else (o.name + ("es" if o.name.endswith(("s", "sh", "ch")) else "s"))
    return " ".join(w for w in [*words, name] if w)


def graph_caption(graph: ImageSceneGraph) -> str:
    """A fine-grained caption written from a graph (what the simulated VLM 'says' for A.1.1)."""
    by_id = {o.id: o for o in graph.objects}
    rel_of: dict[int, Relation] = {}
    for r in graph.relations:
        if SCENE_NODE_ID not in (r.subject_id, r.object_id):
            rel_of.setdefault(r.subject_id, r)
    parts = []
    for o in graph.objects:
        p = _phrase(o, graph.object_counts.get(o.name, -1))
        if o.id in rel_of:
            r = rel_of[o.id]
            p += f" {r.relation.replace('_', ' ')} the {by_id[r.object_id].name}"
        parts.append(p)
    body = "; ".join(parts) if parts else "no distinct objects"
    scene = graph.scene.lower()
    return f"An aerial image of {'an' if scene[:1] in 'aeiou' else 'a'} {scene} with {body}."


def simulate(task: str, truth: ImageSceneGraph, owner_id: str, cfg: SimulatedVLMConfig, seed: int = 0) -> str:
    """The simulated answer of an image task, as the JSON text the parsers store."""
    if task == "image_graph":
        return simulate_image_graph(truth, owner_id, cfg, seed).model_dump_json()
    if task == "object_counts":
        return simulate_object_counts(truth, owner_id, cfg, seed).model_dump_json()
    if task == "fine_grained_caption":
        return json.dumps(graph_caption(simulate_image_graph(truth, owner_id, cfg, seed)))
    raise ValueError(f"the simulated VLM answers image tasks only, not {task!r}")
