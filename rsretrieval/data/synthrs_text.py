"""Captions and ground-truth scene graphs of the synthetic ``synthrs`` scenes.

``build_graph`` turns a ``SceneSpec`` into an ``ImageSceneGraph`` (one node per object type or
land-cover region, with colour/size/count/shape attributes; counts of -1 for uncountable regions
and for very many trees), with spatial relations computed from the drawn geometry (on, along,
adjacent_to, surrounded_by, north_of/south_of/east_of/west_of, crosses) and an ``inside``/``part_of``
edge from every node to the scene hyper-node. ``original_captions`` writes vague UCM/RSICD-style
captions; ``fine_grained_caption`` spells out exact counts, colours, sizes, land cover and relations.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from rsretrieval.data.synthrs import AREA_KINDS, SceneObject2D, SceneSpec, region_masks
from rsretrieval.graphs.schema import SCENE_NODE_ID, ImageSceneGraph, Relation, SceneObject

SCENE_NAMES = {"airport": "Airport", "industrial": "Industrial Area", "port": "Port", "residential": "Residential Area",
               "parking": "Parking Lot", "farmland": "Farmland", "sports": "Sports Facility", "forest": "Forest",
               "river": "River"}
MANY_TREES = 12  # more trees than this are "uncountable" (-1), as the A.1.2 prompt asks for very many objects
_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
         "seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_PLURAL = {"storage tank": "storage tanks", "terminal building": "terminal buildings", "swimming pool": "swimming pools",
           "tennis court": "tennis courts", "soccer field": "soccer fields", "running track": "running tracks",
           "parking lot": "parking lots"}
_SHAPE = {"circle": "round", "rect": "rectangular", "plane": "cross-shaped", "ship": "elongated", "line": "linear"}
_PHRASE = {"on": "on", "along": "along", "adjacent_to": "next to", "surrounded_by": "surrounded by",
           "north_of": "north of", "south_of": "south of", "east_of": "east of", "west_of": "west of",
           "crosses": "crossing"}
_PRIORITY = ("on", "surrounded_by", "crosses", "along", "adjacent_to", "north_of", "south_of", "east_of", "west_of")


def number_word(n: int) -> str:
    """English number word for 0..999 (digits beyond), e.g. 'one hundred thirty-one'."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else "-" + _ONES[n % 10])
    if n < 1000:
        return _ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + number_word(n % 100))
    return str(n)


def plural(kind: str, n: int) -> str:
    """``kind`` in plural when ``n != 1``."""
    if n == 1:
        return kind
    return _PLURAL.get(kind, kind[:-1] + "ies" if kind.endswith("y") else kind + "s")


def _colour_attr(objs: list[SceneObject2D]) -> str:
    c = Counter(o.color for o in objs)
    return ", ".join(k for k, _ in c.most_common()) if len(c) <= 3 else "mixed"


class _Node:
    """Geometry of one graph node: its objects (countable) or its mask (region)."""

    def __init__(self, nid: int, name: str, objs: list[SceneObject2D], mask: np.ndarray | None) -> None:
        self.id, self.name, self.objs, self.mask = nid, name, objs, mask
        if objs:
            b = np.array([o.bbox() for o in objs])
            self.boxes, self.centres = b, np.array([(o.x, o.y) for o in objs])
            self.box = (b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max())
        else:
            ys, xs = np.nonzero(mask)
            self.boxes = np.zeros((0, 4))
            self.centres = np.stack([xs, ys], 1).astype(float) if len(xs) else np.zeros((0, 2))
            self.box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) if len(xs) else (0, 0, 0, 0)


def _inside_frac(a: _Node, mask: np.ndarray) -> float:
    n = mask.shape[0]
    c = np.clip(a.centres.astype(int), 0, n - 1)
    return float(mask[c[:, 1], c[:, 0]].mean()) if len(c) else 0.0


def _seg_dist(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((p - a) @ ab) / max(float(ab @ ab), 1e-9), 0, 1)
    return np.linalg.norm(p - (a + t[:, None] * ab), axis=1)


def _box_gap(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest gap between any box of ``a`` and any box of ``b`` (0 when they touch or overlap)."""
    dx = np.maximum(0, np.maximum(a[:, None, 0] - b[None, :, 2], b[None, :, 0] - a[:, None, 2]))
    dy = np.maximum(0, np.maximum(a[:, None, 1] - b[None, :, 3], b[None, :, 1] - a[:, None, 3]))
    return float(np.hypot(dx, dy).min())


def _contains(outer: tuple, inner: tuple) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and outer[2] >= inner[2] and outer[3] >= inner[3]


def _relation(a: _Node, b: _Node, size: int, masks: dict[str, np.ndarray]) -> str | None:
    """The most specific spatial relation of ``a`` to ``b``, or None when none is clear."""
    a_kind = a.objs[0].kind if a.objs else a.name
    b_kind = b.objs[0].kind if b.objs else b.name
    if a.objs and b.mask is not None and _inside_frac(a, b.mask) >= .8:
        return "on" if b.name in ("water", "river", "bare ground", "forest") or a_kind == "car" else "surrounded_by"
    if a.objs and b.objs and b_kind in AREA_KINDS and a_kind not in AREA_KINDS and a_kind != "road":
        m = np.zeros((size, size), bool)
        for o in b.objs:
            x0, y0, x1, y1 = (int(v) for v in o.bbox())
            m[max(y0, 0):y1, max(x0, 0):x1] = True
        if _inside_frac(a, m) >= .8:
            return "on"
    if a_kind == "road" and b.name in ("river", "water") and b.mask is not None:
        if any(_seg_dist(b.centres[::7], *map(np.asarray, o.polygon())).min() < 2 for o in a.objs):
            return "crosses"
    if b_kind == "road" and a.objs and a_kind != "road":
        d = np.min([_seg_dist(a.centres, *map(np.asarray, o.polygon())) for o in b.objs], axis=0)
        reach = max(o.w for o in b.objs) / 2 + max(max(o.w, o.h) for o in a.objs) / 2 + 6
        if len(a.objs) >= 3 and (d <= reach).mean() >= .7:
            return "along"
    if len(a.objs) == 1 and len(b.objs) == 1 and b_kind in AREA_KINDS and _contains(b.box, a.box):
        return "surrounded_by"
    if a.objs and b.objs and _box_gap(a.boxes, b.boxes) <= 6 and a_kind != "road" and b_kind != "road":
        return "adjacent_to"
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = a.box, b.box
    if ay1 <= by0:
        return "north_of"
    if ay0 >= by1:
        return "south_of"
    if ax1 <= bx0:
        return "west_of"
    if ax0 >= bx1:
        return "east_of"
    return None


def _position(n: _Node, size: int) -> str:
    """Where the node's mass lies: 'center', 'north', 'south-east', ..., or 'across the image'."""
    if n.mask is not None and n.mask.mean() > .6:
        return "across the image"
    cx, cy = n.centres.mean(0) / size if len(n.centres) else (0.5, 0.5)
    ns = "north" if cy < 1 / 3 else "south" if cy > 2 / 3 else ""
    ew = "west" if cx < 1 / 3 else "east" if cx > 2 / 3 else ""
    return "-".join(w for w in (ns, ew) if w) or "center"


def _nodes(spec: SceneSpec) -> list[_Node]:
    by_kind: dict[str, list[SceneObject2D]] = {}
    for o in spec.objects:
        by_kind.setdefault(o.kind, []).append(o)
    nodes = [_Node(i, k, v, None) for i, (k, v) in enumerate(by_kind.items())]
    masks = region_masks(spec)
    bg = ~np.logical_or.reduce(list(masks.values())) if masks else np.ones((spec.size, spec.size), bool)
    masks = {spec.background: bg | masks.get(spec.background, False)} | masks
    for k, m in masks.items():
        if m.any():
            nodes.append(_Node(len(nodes), k, [], m))
    return nodes


def build_graph(spec: SceneSpec) -> ImageSceneGraph:
    """Ground-truth scene graph of a scene (schema of the thesis' image-graph prompt, appendix A.1.2)."""
    nodes = _nodes(spec)
    masks = {n.name: n.mask for n in nodes if n.mask is not None}
    counts: dict[str, int] = {}
    objects: list[SceneObject] = []
    relations: list[Relation] = []
    scene = SCENE_NAMES[spec.scene_type]
    for n in nodes:
        if n.objs:
            k = len(n.objs)
            counts[n.name] = -1 if n.name == "tree" and k > MANY_TREES else k
            attrs = {"color": _colour_attr(n.objs), "size": "/".join(sorted({o.size for o in n.objs})),
                     "shape": _SHAPE[n.objs[0].shape], "count": str(counts[n.name]), "position": _position(n, spec.size)}
            if n.objs[0].shape == "line":
                dirs = {"east-west" if o.angle % 180 else "north-south" for o in n.objs}
                attrs["orientation"] = dirs.pop() if len(dirs) == 1 else "crossing"
        else:
            counts[n.name] = -1
            attrs = {"type": "land cover", "texture": "textured" if n.name == "forest" else "uniform",
                     "position": _position(n, spec.size)}
            if n.name == "river":
                x0, y0, x1, y1 = n.box
                attrs["orientation"] = "east-west" if x1 - x0 >= y1 - y0 else "north-south"
        objects.append(SceneObject(id=n.id, name=n.name, attributes=attrs))
        relations.append(Relation(subject=n.name, relation="inside" if n.objs else "part_of", object=scene,
                                  subject_id=n.id, object_id=SCENE_NODE_ID))
    cands = [(a, r, b) for a in nodes for b in nodes if b is not a and (a.objs or b.mask is not None and not b.objs)
             and (r := _relation(a, b, spec.size, masks)) is not None]
    cands.sort(key=lambda arb: (arb[2].name == spec.background, _PRIORITY.index(arb[1]), arb[0].id, arb[2].id))
    seen: set[frozenset[int]] = set()
    kept: Counter[int] = Counter()
    for a, r, b in cands:  # most specific relations first, at most two per subject, one per pair
        if frozenset((a.id, b.id)) in seen or kept[a.id] == 2:
            continue
        seen.add(frozenset((a.id, b.id)))
        kept[a.id] += 1
        relations.append(Relation(subject=a.name, relation=r, object=b.name, subject_id=a.id, object_id=b.id))
    return ImageSceneGraph(scene=scene, object_counts=counts, objects=objects, relations=relations)


def _node_phrase(obj: SceneObject, count: int, spec: SceneSpec) -> str:
    if count == -1:
        return "many trees" if obj.name == "tree" else obj.name
    a = obj.attributes
    where = _where(a)
    size = a["size"] if a["size"] not in ("medium", "large/small") else ""
    colours = Counter(o.color for o in spec.objects if o.kind == obj.name)
    if len(colours) == 1 or len(colours) > 3:
        col = a["color"] if len(colours) == 1 else "multicoloured"
        return " ".join(w for w in (number_word(count), size, col, plural(obj.name, count)) if w) + where
    parts = " and ".join(f"{number_word(k)} {c}" for c, k in colours.most_common())
    return " ".join(w for w in (number_word(count), size, plural(obj.name, count)) if w) + f" ({parts})" + where


def _where(a: dict[str, str]) -> str:
    """' running east-west in the north' for roads, '' otherwise."""
    if "orientation" not in a:
        return ""
    out = " crossing each other" if a["orientation"] == "crossing" else f" running {a['orientation']}"
    return out + (f" on the {a['position']} side" if a["position"] not in ("center", "across the image") else "")


def fine_grained_caption(spec: SceneSpec, graph: ImageSceneGraph, rng: np.random.Generator) -> str:
    """Exact counts (number words), colours, sizes, land cover and one relation per object type."""
    by_id = {o.id: o for o in graph.objects}
    first: dict[int, Relation] = {}
    for r in graph.relations:
        if r.object_id != SCENE_NODE_ID and r.subject_id not in first:
            first[r.subject_id] = r
    parts = []
    for o in graph.objects:
        c = graph.object_counts[o.name]
        if c == -1 and "count" not in o.attributes:
            continue
        p = _node_phrase(o, c, spec)
        if o.id in first:
            r = first[o.id]
            target = by_id[r.object_id]
            tc = graph.object_counts[target.name]
            tcol = target.attributes.get("color", "")
            tname = f"{tcol} {target.name}" if tc == 1 and tcol not in ("", "mixed") else plural(target.name, max(tc, 1))
            p += ("," if " running " in p else "") + f" {_PHRASE[r.relation]} the {tname}"
        parts.append(p)
    cover = [o for o in graph.objects if "count" not in o.attributes]
    regions = []
    for o in cover[1:] if cover and cover[0].name == spec.background else cover:
        p = o.name if o.name != "river" else f"a {o.name} running {o.attributes['orientation']}"
        if o.attributes["position"] not in ("center", "across the image"):
            p += f" in the {o.attributes['position']}"
        elif o.attributes["position"] == "center":
            p += " in the center"
        if o.id in first:
            r = first[o.id]
            p += f" {_PHRASE[r.relation]} the {by_id[r.object_id].name}"
        regions.append(p)
    opener = str(rng.choice(["{a} with", "an aerial view of {a} with", "a top-down image of {a} showing"]))
    art = "an" if spec.scene_type[0] in "aeiou" else "a"
    scene = f"{art} {SCENE_NAMES[spec.scene_type].lower()}"
    text = opener.format(a=scene) + " " + "; ".join(parts + regions) if parts + regions else scene
    text += f", on {spec.background}" if spec.background != "forest" or spec.scene_type != "forest" else ", in dense forest"
    return text[0].upper() + text[1:] + "."


def _vague(kind: str, n: int) -> str:
    """'a plane', 'two planes', 'some planes', 'many planes': the quantifiers of the original datasets."""
    return f"a {kind}" if n == 1 else f"{'two' if n == 2 else 'some' if n < 6 else 'many'} {plural(kind, 2)}"


def original_captions(spec: SceneSpec, rng: np.random.Generator, k: int = 5) -> list[str]:
    """``k`` generic captions in UCM/RSICD style: scene-level, vague quantifiers, lower case, " ." ending."""
    c = Counter(o.kind for o in spec.objects)
    regions = {r.kind for r in spec.regions}
    t = spec.scene_type
    def q(kind: str) -> str:
        return _vague(kind, c[kind])
    pools: dict[str, list[str]] = {
        "airport": [f"{q('plane')} parked at the airport .", "this is an airport .",
                    "an airport with a runway and a terminal .", f"{q('plane')} near the terminal building .",
                    "several planes are parked on the apron .", "the airport has a long runway ."],
        "industrial": ["there are some storage tanks in the industrial area .", "this is an industrial area .",
                       f"{q('storage tank')} arranged neatly .", "many white storage tanks are in the factory .",
                       "some warehouses and storage tanks are in the industrial area .", "an industrial area with tanks ."],
        "port": ["several ships are docked at the port .", "this is a port .", "some boats are in the harbor .",
                 f"{q('ship')} near the docks .", "a port with many ships and docks .",
                 "ships are moored in the water near the port ."],
        "residential": ["many houses are arranged neatly .", "this is a residential area .", "a residential area with houses and trees .",
                        "some houses are along the road .", "many buildings and some green trees are in the residential area .",
                        f"{q('house')} in this area ."],
        "parking": ["many cars are parked in the parking lot .", "this is a parking lot .", "a parking lot with many cars .",
                    "some cars are parked in rows .", "lots of cars are parked neatly .", "there are many cars in the parking lot ."],
        "farmland": ["this is a piece of farmland .", "some fields of different colors .", "many green fields are here .",
                     "the farmland is divided into several pieces .", "there are some farmlands .", "a farmland with fields ."],
        "sports": ["this is a playground .", "some tennis courts are next to the road .", "there are some courts and trees .",
                   f"{q('tennis court')} in the sports area .", "a sports field with courts .",
                   "a playground is surrounded by green trees ."],
        "forest": ["this is a dense forest .", "many green trees are in the forest .", "a forest with dark green trees .",
                   "the forest is very dense .", "there are many trees in the forest .", "a large area of forest ."],
        "river": ["a river goes through this area .", "this is a river .", "a river with green banks .",
                  "the river is winding .", "there is a river in the area .", "a curved river passes through ."],
    }
    pool = pools[t]
    if "river" in regions and t != "river":
        pool = pool + ["a river goes through this area ."]
    idx = rng.choice(len(pool), size=min(k, len(pool)), replace=False)
    out = [pool[int(i)] for i in idx]
    while len(out) < k:
        out.append(pool[int(rng.integers(len(pool)))])
    return out
