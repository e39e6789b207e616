"""Captions and ground-truth scene graphs of the synthetic ``synthrs`` scenes.

``build_graph`` turns a ``SceneSpec`` into an ``ImageSceneGraph`` (one node per object type or
land-cover region, with colour/size/count/shape attributes; counts of -1 for uncountable regions
and for very many trees), with spatial relations computed from the drawn geometry (on, along,
adjacent_to, surrounded_by, north_of/south_of/east_of/west_of, crosses) and an ``inside``/``part_of``
edge from every node to the scene hyper-node. ``original_captions`` writes vague UCM/RSICD-style
captions.

``fine_grained_caption`` writes one caption from the graph in the variety of real VLM-written (prompt
A.1.1) captions, so that reading a graph back from it (``generation.text_graph_parser``) is not trivial:
* names, colours and sizes in paraphrase (ship / vessel / boat, storage tank / oil tank / tank, gray /
  grey, light gray / silver, large / big, ...; ``name_forms`` lists every name of a type);
* counts in words or digits (a per-caption style), approximate for large counts ("about a dozen",
  "more than forty", "dozens of"), sometimes vague for small objects ("several", "a few"); a count
  stated exactly is always the true count, and very many trees never get a number;
* a random subset of the object types (always the most salient one of the scene type), colour or size
  sometimes left out, land cover and regions named in several ways;
* true details the graph lacks (shadows, runway and court markings, roof ridges, tank grids, ground
  texture, "a typical suburban layout"), never a false statement about an object;
* relations from the graph stated directly ("north of the road"), inverted ("the road lies south of
  six tanks", "the road is lined with cars"), fronted ("Along the road, six cars are parked"), or left out;
* one long sentence with a list, or 2-4 sentences, scene-first or object-first, with varied openers;
  at most ``MAX_WORDS`` words (details are dropped, least salient first, until it fits).
Every choice is drawn from the generator passed in, so a caption depends only on its state.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from rsretrieval.data.synthrs_scenes import AREA_KINDS, SceneObject2D, SceneSpec, region_masks
from rsretrieval.graphs.from_boxes import compass_relation
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
    return _PLURAL.get(kind, kind[:-1] + "ies" if kind.endswith("y") and kind[-2:-1] not in "aeiou" else kind + "s")


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
    return compass_relation(a.box, b.box)


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


# --- fine-grained captions ------------------------------------------------------------------------------------------
# Written from the ground-truth graph, but in the variety of real (Gemini) fine-grained captions: synonyms, number
# styles, omissions, true extra details, relations stated several ways, several sentence structures.

MAX_WORDS = 70  # CLIP's context is 77 tokens; the tokenizer truncates longer captions
OBJECT_NAMES: dict[str, tuple[str, ...]] = {  # "singular" or "singular|plural"; the first is the graph's own name
    "plane": ("plane", "aircraft|aircraft", "airplane", "jet"),
    "runway": ("runway", "airstrip", "landing strip"),
    "apron": ("apron", "tarmac apron", "parking apron"),
    "terminal building": ("terminal building", "terminal", "terminal hall"),
    "storage tank": ("storage tank", "oil tank", "tank", "fuel tank", "cylindrical tank"),
    "warehouse": ("warehouse", "industrial building", "shed", "factory building"),
    "road": ("road", "paved road", "asphalt road"),
    "car": ("car", "vehicle", "passenger car"),
    "ship": ("ship", "vessel"),
    "dock": ("dock", "pier", "jetty|jetties", "wharf|wharves"),
    "container": ("container", "shipping container", "cargo container"),
    "house": ("house", "home", "residential building", "detached house"),
    "swimming pool": ("swimming pool", "pool"),
    "tree": ("tree", "tree crown"),
    "parking lot": ("parking lot", "car park", "parking area"),
    "building": ("building", "commercial building", "flat-roofed building"),
    "field": ("field", "crop field", "plot", "farm field", "parcel"),
    "tennis court": ("tennis court", "court"),
    "soccer field": ("soccer field", "football pitch|football pitches", "football field", "soccer pitch|soccer pitches"),
    "running track": ("running track", "athletics track", "track"),
}
_DIRT_ROADS = ("road", "dirt road", "unpaved road", "dirt track", "path")  # brown roads
_STREETS = ("street", "residential street")  # roads of residential areas
_IF_ALL_LARGE = {"plane": ("airliner",)}
_IF_ALL_SMALL = {"ship": ("boat",)}
_COLOURS: dict[str, tuple[str, ...]] = {
    "white": ("white",), "light gray": ("light gray", "light grey", "silver", "pale gray"), "gray": ("gray", "grey"),
    "dark gray": ("dark gray", "dark grey", "charcoal"), "black": ("black",), "red": ("red", "reddish"),
    "blue": ("blue",), "green": ("green",), "light green": ("light green", "pale green"), "yellow": ("yellow", "golden"),
    "brown": ("brown",), "orange": ("orange",), "beige": ("beige", "tan", "cream-colored"),
    "dark green": ("dark green", "deep green"), "teal": ("teal", "turquoise", "blue-green"),
}
_SIZES = {"small": ("small", "small", "little", "compact"), "medium": ("medium-sized", "mid-sized"),
          "large": ("large", "large", "big"), "narrow": ("narrow", "thin"), "wide": ("wide", "broad")}
_PLAIN_SIZE = frozenset(["car", "tree", "container", "swimming pool", "apron", "parking lot", "field", "soccer field",
                         "running track", "dock", "tennis court"])  # size says little: usually left out
_ROOFED = frozenset(["house", "warehouse", "building", "terminal building"])  # colour = roof colour
_SCENES = {
    "airport": ("an airport", "an airfield", "an airport area"),
    "industrial": ("an industrial area", "an industrial site", "an industrial zone", "a factory area"),
    "port": ("a port", "a harbor", "a harbour", "a port area", "a waterfront"),
    "residential": ("a residential area", "a neighborhood", "a suburban area", "a housing area"),
    "parking": ("a parking lot", "a car park", "a large parking area"),
    "farmland": ("farmland", "an agricultural area", "a farming area", "cropland"),
    "sports": ("a sports facility", "a sports complex", "a sports ground", "a recreation area"),
    "forest": ("a forest", "a woodland", "a forested area", "a wooded area"),
    "river": ("a river landscape", "a riverside area", "a river scene"),
}
KEY_OBJECTS = {"airport": ("plane", "runway", "terminal building", "apron"), "industrial": ("storage tank", "warehouse", "road"),
        "port": ("ship", "dock", "warehouse", "container"), "residential": ("house", "road", "swimming pool"),
        "parking": ("car", "parking lot", "building"), "farmland": ("field", "house", "road"),
        "sports": ("tennis court", "soccer field", "running track"), "forest": ("house", "road"), "river": ("road", "tree")}
_OPENERS = ("An aerial view of {s}", "A top-down view of {s}", "An overhead image of {s}", "A satellite image of {s}",
            "This aerial image shows {s}", "The image shows {s}", "This remote sensing image depicts {s}",
            "Aerial photograph of {s}", "A bird's-eye view of {s}", "A high-resolution aerial view of {s}")
_INTROS = ("This is an aerial image of {s}.", "The image shows {s} seen from above.", "An overhead view of {s}.",
           "{S} seen from directly above.", "This top-down image captures {s}.", "A satellite view of {s}.")
_COVER = {  # background land cover: nouns, adjectives
    "grass": (("grass", "grassland", "lawn", "grassy ground"), ("grassy", "grass-covered")),
    "bare ground": (("bare ground", "bare soil", "barren land", "brown soil"), ("bare", "barren")),
    "sand": (("sand", "sandy ground", "sandy terrain"), ("sandy",)),
    "forest": (("dense forest", "woodland", "the forest canopy"), ("forested", "densely wooded")),
}
# relation -> prepositions (after a verb or a noun phrase), participles (after a noun phrase), finite verbs
_PREP = {"on": ("on",), "along": ("along", "beside", "alongside"),
         "adjacent_to": ("next to", "beside", "adjacent to", "close to"), "surrounded_by": ("surrounded by", "amid", "set in"),
         "north_of": ("north of", "to the north of", "above"),
         "south_of": ("south of", "to the south of", "below"), "east_of": ("east of", "to the east of", "to the right of"),
         "west_of": ("west of", "to the west of", "to the left of"), "crosses": ("across",)}
_PART = {"along": ("lining",), "crosses": ("crossing", "running across", "cutting across"),
         "surrounded_by": ("surrounded by",)}
_VERBAL = {"along": ("lines|line",), "crosses": ("crosses|cross", "runs across|run across", "cuts across|cut across"),
           "adjacent_to": ("borders|border",)}
_INVERSE = {"on": ("holds|hold", "carries|carry", "is occupied by|are occupied by"),
            "along": ("is lined with|are lined with",),
            "adjacent_to": ("lies next to|lie next to", "is adjacent to|are adjacent to"),
            "surrounded_by": ("surrounds|surround", "encloses|enclose"), "north_of": ("lies south of|lie south of",),
            "south_of": ("lies north of|lie north of",), "east_of": ("lies west of|lie west of",),
            "west_of": ("lies east of|lie east of",), "crosses": ("is crossed by|are crossed by",)}
_INV_NP = {"on": ("with {x} on {it}", "holding {x}"), "along": ("lined with {x}",), "adjacent_to": ("next to {x}",),
           "surrounded_by": ("surrounding {x}",), "north_of": ("with {x} to {its} north",),
           "south_of": ("with {x} to {its} south",), "east_of": ("with {x} to {its} east",),
           "west_of": ("with {x} to {its} west",), "crosses": ("crossed by {x}",)}
_VERBS = {  # complement-free predicates per type ("sing|plural")
    "plane": ("is parked|are parked", "sits|sit", "stands|stand"), "car": ("is parked|are parked",),
    "ship": ("floats|float", "lies|lie"), "storage tank": ("stands|stand", "sits|sit", "is located|are located"),
    "house": ("stands|stand", "is built|are built", "is located|are located"), "tree": ("grows|grow", "stands|stand"),
    "road": ("runs|run",), "runway": ("runs|run", "stretches|stretch"), "field": ("lies|lie", "is laid out|are laid out"),
}
_END_VERBS = frozenset(["is parked", "are parked", "is built", "are built", "stands", "stand", "grows", "grow",
                        "floats", "float"])  # fine at the end of a sentence ("Along the road, six cars are parked.")
_DEFAULT_VERBS = ("is located|are located", "lies|lie", "is situated|are situated")
_VISIBLE = ("is visible|are visible", "can be seen|can be seen", "appears|appear")


def name_forms(kind: str) -> set[str]:
    """Every singular and plural name a fine-grained caption may give an object type (for checks and tests)."""
    opts = OBJECT_NAMES.get(kind, (kind,)) + _IF_ALL_LARGE.get(kind, ()) + _IF_ALL_SMALL.get(kind, ())
    opts += (_DIRT_ROADS + _STREETS) if kind == "road" else ()
    return {w for v in opts for w in _num_of(v)}


def _pick_s(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return str(options[int(rng.integers(len(options)))])


def _num_of(v: str) -> tuple[str, str]:
    s, _, p = v.partition("|")
    return s, p or plural(s, 2)


def _agree(v: str, many: bool) -> str:
    s, _, p = v.partition("|")
    return p if many else s


def _art(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _words(text: str) -> int:
    return len(text.split())


class _Item:
    """One mentioned object type: its wording is fixed once per caption, the sentence around it varies."""

    def __init__(self, kind: str, n: int, many: bool) -> None:
        self.kind, self.n, self.many = kind, n, many
        self.sing = self.plur = kind
        self.count, self.exact, self.size, self.col_pre, self.col_post, self.post, self.pos = "", False, "", "", "", "", ""
        self.rel: tuple[str, str, str, bool, int] | None = None  # (relation, target phrase, form, plural?, target id)
        self.node_id = -1
        self.absorbed_by: _Item | None = None  # introduced inside another item's inverted relation

    @property
    def plural(self) -> bool:
        return self.many or self.n != 1

    def np(self, post: bool = True) -> str:
        words = [w for w in (self.count, self.size, self.col_pre, self.plur if self.plural else self.sing) if w]
        if words[0] == "a":
            words[0] = _art(words[1])
        return " ".join(words) + self.col_post + (" " + self.post if post and self.post else "")


class _Caption:
    """Draws every wording choice of one caption from ``rng``; ``render(level)`` assembles it, shorter per level."""

    def __init__(self, spec: SceneSpec, graph: ImageSceneGraph, rng: np.random.Generator) -> None:
        self.spec, self.graph, self.rng = spec, graph, rng
        self.seed = int(rng.integers(2**62))
        self.style = _pick_s(rng, ("words", "words", "words", "digits", "digits", "mixed", "mixed"))
        self.scene = _pick_s(rng, _SCENES[spec.scene_type])
        self.by_id = {o.id: o for o in graph.objects}
        self.cover_inverted = False
        self.objs: dict[str, list[SceneObject2D]] = {}
        for o in spec.objects:
            self.objs.setdefault(o.kind, []).append(o)
        self.names = {k: self._name(k) for k in graph.object_counts if k in self.objs}
        counted = [o for o in graph.objects if "count" in o.attributes and o.name in self.objs]
        key = KEY_OBJECTS[spec.scene_type]
        counted.sort(key=lambda o: (key.index(o.name) if o.name in key else len(key),
                                    -sum(b.w * b.h for b in self.objs[o.name])))
        self.items: list[_Item] = []
        for i, o in enumerate(counted):
            if i == 0 or rng.random() < (.85 if i == 1 else .6):
                self.items.append(self._item(o, salient=i == 0))
        if len(self.items) > 2 and rng.random() < .4:  # not always in order of salience
            rest = self.items[1:]
            self.items = self.items[:1] + [rest[int(j)] for j in rng.permutation(len(rest))]
        for i, it in enumerate(self.items):  # "a gray apron holds seven planes": a relation introduces its target
            if it.rel and it.absorbed_by is None:  # when that is mentioned later (earlier: "the apron" refers back)
                t = next((x for x in self.items[i + 1:] if x.node_id == it.rel[4]), None)
                if t is not None and t.absorbed_by is None and not any(x.absorbed_by is t for x in self.items):
                    t.absorbed_by = it
                    it.rel = (it.rel[0], t.np(), it.rel[2], t.plural, it.rel[4])
        self._cover()
        self.extras = self._extras()

    # --- wording of the parts ---------------------------------------------------------------------------------
    def _name(self, kind: str) -> tuple[str, str]:
        opts = OBJECT_NAMES.get(kind, (kind,))
        objs = self.objs[kind]
        if kind == "road" and all(o.color == "brown" for o in objs):
            opts = _DIRT_ROADS
        elif kind == "road" and self.spec.scene_type == "residential":
            opts = opts + _STREETS
        if all(o.size == "large" for o in objs):
            opts = opts + _IF_ALL_LARGE.get(kind, ())
        if all(o.size == "small" for o in objs):
            opts = opts + _IF_ALL_SMALL.get(kind, ())
        return _num_of(opts[0] if self.rng.random() < .4 else _pick_s(self.rng, opts[1:] or opts))

    def num(self, n: int) -> str:
        words = self.style == "words" and n < 100 or self.style == "mixed" and n <= 10
        return number_word(n) if words else str(n)

    def _count(self, it: _Item, small: bool) -> None:
        n, rng = it.n, self.rng
        if it.many:  # "too many to count" in the graph: never an exact number
            opts = ["many", "numerous", "lots of", "scattered", "more than a dozen"] + (["dozens of"] if n >= 24 else [])
            it.count = _pick_s(rng, opts)
            return
        if n == 1:
            it.count, it.exact = _pick_s(rng, ("a", "a", "one", "a single")), True
            return
        if n >= 10 and rng.random() < .3:
            opts = [f"more than {self.num(10 * ((n - 1) // 10))}"] if n > 10 else []
            if n <= 14:
                opts += ["about a dozen", "around a dozen", "roughly a dozen"]
            if n > 12:
                opts.append("more than a dozen")
            if n >= 24:
                opts.append("dozens of")
            r = 10 * round(n / 10)
            if r >= 20 and abs(r - n) <= 3:
                opts += [f"about {self.num(r)}", f"around {self.num(r)}", f"roughly {self.num(r)}"]
            if r > n and r - n <= 2:
                opts.append(f"nearly {self.num(r)}")
            it.count = _pick_s(rng, opts)
            return
        if small and rng.random() < .18:
            opts = ["a couple of", "a pair of"] if n == 2 else ["several", "a number of"] + (["a few"] if n <= 4 else [])
            it.count = _pick_s(rng, opts)
            return
        it.count, it.exact = self.num(n), True

    def _colour(self, it: _Item) -> None:
        rng = self.rng
        cols = Counter(o.color for o in self.objs[it.kind])
        if rng.random() < .2:  # colour left out
            return
        words = [_pick_s(rng, _COLOURS.get(c, (c,))) for c, _ in cols.most_common()]
        roofed = it.kind in _ROOFED
        if len(cols) == 1:
            c = words[0]
            form = rng.random()
            if roofed and form < .25:
                it.col_post = f" with {c} roofs" if it.plural else f" with a {c} roof"
            elif roofed and form < .4 and " " not in c:
                it.col_pre = f"{c}-roofed"
            else:
                it.col_pre = c
        elif len(cols) <= 3:
            form = rng.random()
            listing = ", ".join(words[:-1]) + " and " + words[-1]
            if form < .45 and not it.many and it.exact:
                parts = [f"{self.num(k)} {w}" for w, (_, k) in zip(words, cols.most_common())]
                it.col_post = " (" + ", ".join(parts[:-1]) + " and " + parts[-1] + ")"
            elif roofed and form < .7:
                it.col_post = f" with {listing} roofs"
            elif form < .8 and len(cols) == 2:
                it.col_pre = listing
            else:
                it.col_post = f" in {listing}"
        else:
            form = rng.random()
            if form < .5:
                it.col_pre = _pick_s(rng, ("multicoloured", "colorful", "multi-colored"))
            else:
                it.col_post = " " + _pick_s(rng, ("of various colors", "in different colours", "in many colors"))

    def _size(self, it: _Item) -> None:
        sizes = sorted({o.size for o in self.objs[it.kind]})
        if self.rng.random() < (.2 if it.kind in _PLAIN_SIZE else .75):
            if len(sizes) == 1:
                it.size = _pick_s(self.rng, _SIZES.get(sizes[0], (sizes[0],)))
            elif sizes == ["large", "small"]:
                it.size = _pick_s(self.rng, ("small and large", "different-sized"))

    def _where(self, a: dict[str, str]) -> str:
        """'in the north-east', 'at the bottom', ... for a position attribute."""
        p = a.get("position", "center")
        if p == "across the image":
            return _pick_s(self.rng, ("across the image", "covering most of the image"))
        if p == "center":
            return _pick_s(self.rng, ("in the center", "in the middle", "in the centre"))
        if "-" not in p:
            alt = {"north": "at the top", "south": "at the bottom", "east": "on the right side", "west": "on the left side"}
            return _pick_s(self.rng, (f"in the {p}", f"in the {p}ern part", alt[p]))
        ns, ew = p.split("-")
        tb, lr = ("top" if ns == "north" else "bottom"), ("right" if ew == "east" else "left")
        return _pick_s(self.rng, (f"in the {p}", f"in the {ns}{ew} corner", f"in the {tb} {lr}", f"in the {tb}-{lr} corner"))

    def _orient(self, o: str) -> str:
        if o == "crossing":
            return _pick_s(self.rng, ("crossing each other", "that intersect", "meeting at a junction"))
        h = o == "east-west"
        return _pick_s(self.rng, (f"running {o}", "running horizontally" if h else "running vertically",
                                  "crossing the image from left to right" if h else "crossing the image from top to bottom",
                                  f"oriented {o}"))

    def _target(self, nid: int) -> tuple[str, bool]:
        """How a relation names its object: 'the dark gray road', 'grass', 'the water' (and whether plural)."""
        t = self.by_id[nid]
        if "count" not in t.attributes:
            if t.name in ("grass", "sand", "bare ground"):
                return _pick_s(self.rng, _COVER[t.name][0][:3]), False
            if t.name == "forest":
                return _pick_s(self.rng, ("the forest", "dense forest", "woodland")), False
            if t.name == "water":
                return _pick_s(self.rng, ("the water", "the sea") if self.spec.scene_type == "port"
                               else ("the water", "the pond")), False
            return f"the {t.name}", False
        many = self.graph.object_counts.get(t.name, 1) != 1
        sing, plur = self.names.get(t.name, (t.name, plural(t.name, 2)))
        cols = {o.color for o in self.objs.get(t.name, [])}
        col = ""
        if len(cols) == 1 and self.rng.random() < .5:
            col = _pick_s(self.rng, _COLOURS.get(next(iter(cols)), ("",))) + " "
        return f"the {col}{plur if many else sing}", many

    def _item(self, o: SceneObject, salient: bool) -> _Item:
        rng, kind = self.rng, o.name
        it = _Item(kind, len(self.objs[kind]), self.graph.object_counts.get(kind, 0) == -1)
        it.sing, it.plur = self.names[kind]
        it.node_id = o.id
        small = all(b.size == "small" for b in self.objs[kind])
        self._count(it, small)
        self._size(it)
        self._colour(it)
        a = o.attributes
        if "orientation" in a and rng.random() < .65:
            it.post = self._orient(a["orientation"])
        elif kind == "runway" and rng.random() < .5:
            it.post = self._orient("east-west" if self.objs[kind][0].angle % 180 else "north-south")
        rels = [r for r in self.graph.relations if r.subject_id == o.id and r.object_id != SCENE_NODE_ID]
        if rels and rng.random() < (.8 if salient else .6):
            r = rels[0] if len(rels) == 1 or rng.random() < .6 else rels[1]
            tgt, tmany = self._target(r.object_id)
            cover = "count" not in self.by_id[r.object_id].attributes
            u = rng.random()
            form = "direct" if u < .5 else "front" if u < .72 else "inverse"
            if form == "inverse" and cover and (r.relation != "surrounded_by" or kind == "road" or self.cover_inverted):
                form = "direct"  # land cover as a subject only in "grass surrounds ...", once per caption
            it.rel = (r.relation, tgt, form, tmany, r.object_id)
            self.cover_inverted |= cover and form == "inverse"
        b = np.array([x.bbox() for x in self.objs[kind]])
        spread = min(b[:, 2].max() - b[:, 0].min(), b[:, 3].max() - b[:, 1].min()) > .6 * self.spec.size
        if not it.rel and a.get("position") and not spread and rng.random() < .35:
            it.pos = self._where(a)
        return it

    def _cover(self) -> None:
        rng, spec = self.rng, self.spec
        bg = spec.background
        nouns, adjs = _COVER[bg]
        self.bg_noun, self.bg_adj = _pick_s(rng, nouns), _pick_s(rng, adjs)
        self.regions: list[str] = []
        for o in self.graph.objects:
            if "count" in o.attributes or o.name == bg:
                continue
            key = o.name == "river" or o.name == "water" and spec.scene_type == "port"
            if not key and rng.random() < .35:
                continue
            where = self._where(o.attributes)
            if o.name == "river":
                p = _pick_s(rng, ("a river", "a winding river", "a broad river", "a river channel"))
                self.regions.append(f"{p} {self._orient(o.attributes['orientation'])}" +
                                    (f" {where}" if rng.random() < .4 else ""))
            elif o.name == "water":
                noun = ("the sea", "open water", "the harbor basin", "water") if spec.scene_type == "port" else \
                    ("a pond", "a small lake", "a patch of water")
                self.regions.append(f"{_pick_s(rng, noun)} {where}")
            elif o.name == "forest":
                self.regions.append(_pick_s(rng, ("a strip of forest", "dense woodland", "a forested band")) + f" {where}")
            elif o.name == "bare ground":
                self.regions.append(_pick_s(rng, ("a clearing of bare ground", "a bare clearing", "an open patch of bare soil"))
                                    + f" {where}")
            else:
                self.regions.append(f"{o.name} {where}")

    def _extras(self) -> list[str]:
        """True details the graph does not hold (what the renderer draws); the caption uses at most one."""
        c = {k: len(v) for k, v in self.objs.items()}
        nm = {k: self.names[k][1] for k in self.names}
        out = []
        if "runway" in c:
            out += ["The runway has white edge and centre line markings.",
                    "White lines mark the edges and the centre of the runway."]
        if "plane" in c:
            out.append(f"The {nm['plane']} cast dark shadows." if c["plane"] > 1 else "The aircraft casts a dark shadow.")
        if c.get("storage tank", 0) >= 4:
            out += [f"The {nm['storage tank']} are arranged in a regular grid.",
                    f"The {nm['storage tank']} are laid out in neat rows."]
        if any(o.size != "small" for o in self.objs.get("storage tank", [])):
            out.append("Each tank roof shows a circular inner ring.")
        if "house" in c or "warehouse" in c:
            out += ["Ridge lines are visible on the roofs.", "The roofs show a central ridge line."]
        if {"house", "warehouse", "building", "terminal building", "container", "ship"} & c.keys():
            out += ["Buildings cast short shadows towards the south-east." if {"house", "warehouse", "building"} & c.keys()
                    else "Small shadows fall towards the south-east."]
        if c.get("tennis court", 0) >= 2:
            out.append(f"The {nm['tennis court']} are lined up side by side with white court lines.")
        if "soccer field" in c:
            out.append("The pitch is marked with white lines.")
        if c.get("car", 0) >= 6 and "parking lot" in c:
            out.append("The cars are parked in neat rows.")
        if c.get("field", 0) >= 2:
            out.append(f"The fields form a patchwork separated by thin strips of {_COVER[self.spec.background][0][0]}.")
        if self.spec.scene_type == "residential" and "house" in c and "road" in c:
            out += ["It is a typical suburban layout.", "The layout is typical of a suburban neighborhood."]
        if "dock" in c:
            out.append(f"The {nm['dock']} extend into the water." if c["dock"] > 1
                       else f"The {self.names['dock'][0]} juts into the water.")
        if any(o.name == "river" for o in self.graph.objects):  # a crop may miss the river
            out.append("The river banks are slightly irregular.")
        if self.spec.background == "forest":
            out.append("The forest canopy looks dense and textured.")
        else:
            out.append(f"The {_COVER[self.spec.background][0][0]} has a slightly mottled texture.")
        return out

    # --- assembly ---------------------------------------------------------------------------------------------
    def _prep(self, it: _Item, rng: np.random.Generator, after_np: bool) -> str:
        rel = it.rel[0]  # type: ignore[index]
        opts = list(_PREP[rel])
        if after_np:
            opts += _PART.get(rel, ())
            if it.kind in ("car", "plane") and rel in ("on", "along", "adjacent_to"):
                opts.append("parked " + opts[0])
        if it.kind == "road" and rel in ("on", "surrounded_by"):
            opts = ["through", "across"]
        if it.kind == "car" and it.rel[1].endswith(("parking lot", "car park", "parking area")):  # type: ignore[index]
            opts = ["in", "parked in"] if after_np else ["in"]
        if it.kind == "ship" and rel == "on":
            opts = ["on", "in"] + (["floating on"] if after_np else [])
        return _pick_s(rng, opts)

    def _np_rel(self, it: _Item, rng: np.random.Generator, level: int) -> str:
        """The item as a noun phrase with its relation or position: for lists."""
        if it.rel and level < 6:
            rel, tgt, form, tmany, _ = it.rel
            if form == "inverse" and rel in _INV_NP:
                f = _pick_s(rng, _INV_NP[rel])
                return f"{tgt} " + f.format(x=it.np(), it="them" if tmany else "it", its="their" if tmany else "its")
            return f"{it.np()}{',' if it.post else ''} {self._prep(it, rng, True)} {tgt}"
        return it.np() + (f" {it.pos}" if it.pos and level < 2 else "")

    def _clause(self, it: _Item, rng: np.random.Generator, level: int, first: bool) -> str:
        """The item as a sentence (no final period)."""
        many, np_ = it.plural, it.np()
        be = "are" if many else "is"
        verb = _agree(_pick_s(rng, _VERBS.get(it.kind, _DEFAULT_VERBS)), many)
        if it.rel and level < 6:
            rel, tgt, form, tmany, _ = it.rel
            if form == "inverse":
                return f"{tgt} {_agree(_pick_s(rng, _INVERSE[rel]), tmany)} {np_}"
            prep = self._prep(it, rng, False)
            if form == "front":
                if rng.random() < .5:
                    end = verb if verb.split("|")[0] in _END_VERBS else _agree(_pick_s(rng, _VISIBLE), many)
                    return f"{prep} {tgt}, {it.np(post=False)} {_post_verb(it.post, many) if it.post else end}"
                return f"{prep} {tgt} {_agree(_pick_s(rng, ('lies|lie', 'stands|stand', 'is|are')), many)} {np_}"
            u = rng.random()
            if it.post:
                pv = _post_verb(it.post, many)
                return f"{it.np(post=False)} {pv}{' ' if pv.startswith('run') else ', '}{prep} {tgt}"
            if rel in _VERBAL and u < .35 and not (it.kind == "road" and rel != "crosses"):
                return f"{np_} {_agree(_pick_s(rng, _VERBAL[rel]), many)} {tgt}"
            if u < .55:
                return f"there {be} {np_} {self._prep(it, rng, True)} {tgt}"
            return f"{np_} {be if rel == 'surrounded_by' else verb} {prep} {tgt}"
        if it.pos and level < 2 and not it.post:
            u = rng.random()
            if u < .35:
                return f"{it.pos}, {np_} {_agree(_pick_s(rng, _VISIBLE), many)}"
            if u < .6:
                return f"there {be} {np_} {it.pos}"
            return f"{np_} {verb} {it.pos}"
        u = rng.random()
        if it.post and u < .5:
            return f"{it.np(post=False)} {_post_verb(it.post, many)}" + (f" {it.pos}" if it.pos and level < 2 else "")
        if u < .4:
            return f"there {be} {np_}"
        if u < .7 or first:
            return f"{np_} {_agree(_pick_s(rng, _VISIBLE), many)}"
        return _pick_s(rng, (f"the image also shows {np_}", f"also visible {be} {np_}", f"we can also see {np_}"))

    def _cover_suffix(self, rng: np.random.Generator, level: int) -> str:
        regions = self.regions if level < 3 else [r for r in self.regions if "river" in r][:1]
        bg = self.spec.background
        base = ""
        if regions:
            base = ", with " + _join(regions)
        if self.bg_said:
            return base
        if self.spec.scene_type == "forest" and bg == "forest":
            return base + ("" if rng.random() < .5 else ", " + _pick_s(rng, ("within dense forest", "surrounded by woodland")))
        return base + ", " + _pick_s(rng, (f"on {self.bg_noun}", f"set on {self.bg_noun}", f"on a {self.bg_adj} background",
                                           f"surrounded by {self.bg_noun}"))

    def _cover_sentence(self, rng: np.random.Generator, level: int) -> str:
        """The land cover as a sentence; '' when a relation already named the background and there are no regions."""
        regions = self.regions if level < 3 else [r for r in self.regions if "river" in r][:1]
        bg = self.spec.background
        if self.bg_said:
            if not regions:
                return ""
            forms = [f"{_cap(_join(regions))} {'are' if len(regions) > 1 else 'is'} also visible."]
            forms += [f"There is also {_join(regions)}."] if not regions[0].startswith("the ") else []
            return _pick_s(rng, forms)
        if bg == "forest":
            s = _pick_s(rng, ("Dense forest covers the rest of the image", "The surroundings are densely wooded",
                              "Everything else is forest canopy"))
        else:
            s = _pick_s(rng, (f"The ground is {self.bg_adj}", f"The background is {self.bg_noun}",
                              f"{_cap(self.bg_noun)} covers the rest of the image", f"The surroundings are {self.bg_adj}",
                              f"Everything sits on {self.bg_noun}"))
        if regions:
            forms = [f"{_cap(_join(regions))} {'are' if len(regions) > 1 else 'is'} also visible, and "]
            forms += [f"There is {_join(regions)}, and "] if not regions[0].startswith("the ") else []
            s = _pick_s(rng, forms) + s[0].lower() + s[1:]
        return s + "."

    def render(self, level: int) -> str:
        """The caption; higher ``level`` drops extras (1), positions (2), minor land cover (3), items (4+)."""
        rng = np.random.default_rng(self.seed)
        kept = self.items[:max(1, len(self.items) - max(0, level - 3))]
        items = [it for it in kept if it.absorbed_by is None or it.absorbed_by not in kept or level >= 6]
        extra = _pick_s(rng, self.extras) if self.extras and rng.random() < .45 and level < 1 else ""
        s_phrase = self.scene
        bg_id = next((o.id for o in self.graph.objects if o.name == self.spec.background and "count" not in o.attributes), -2)
        self.bg_said = level < 6 and any(it.rel and it.rel[4] == bg_id for it in items)
        mode = _pick_s(rng, ("list", "list", "list", "multi", "multi", "multi", "multi", "object"))
        if not items:  # an empty crop: its land cover
            n = self.bg_noun
            cover = ("dense forest", "a dense forest canopy", "unbroken woodland") if self.spec.background == "forest" \
                else (n, f"open {n}", f"plain {n}", f"a patch of {n}")
            regions = self.regions if level < 3 else []
            wide = [r for r in regions if r.endswith(("across the image", "covering most of the image"))]
            if wide:
                text = _pick_s(rng, _OPENERS).format(s=wide[0]) + f", with {cover[0]} at the edge"
                regions = [r for r in regions if r != wide[0]]
            else:
                text = _pick_s(rng, _OPENERS).format(s=_pick_s(rng, cover))
            if regions:
                text += (" and " if wide else " with ") + _join(regions)
            if self.spec.scene_type != "forest" and rng.random() < .5:
                text += f", part of {s_phrase}"
            return text + "." + (" " + extra if extra else "")
        if mode == "list":
            parts = [self._np_rel(it, rng, level) for it in items]
            lst = _join(parts)
            u = rng.random()
            if u < .25:
                text = f"{_cap(lst)} in {s_phrase}"
            else:
                opener = _pick_s(rng, _OPENERS)
                verbal = opener.split(" {s}")[0].endswith(("shows", "depicts"))
                sep = _pick_s(rng, (" with ", ": ") if verbal else (" with ", " showing ", ": ", " featuring "))
                text = opener.format(s=s_phrase) + sep + lst
            text += self._cover_suffix(rng, level) + "."
            return text + (" " + extra if extra else "")
        sents: list[str] = []
        rest = items
        if mode == "object":
            c = self._clause(items[0], rng, level, True)
            u = rng.random()
            if u < .4:
                noun = s_phrase.split(" ", 1)[1] if s_phrase.startswith(("a ", "an ")) else s_phrase
                sents.append(f"{_cap(c)} {'at' if self.spec.scene_type == 'airport' else 'in'} this {noun}.")
            elif u < .7:
                sents.append(f"{_cap(c)}; the scene is {s_phrase}.")
            else:
                head = items[0]
                many = head.rel[3] if head.rel and head.rel[2] == "inverse" and level < 6 else head.plural
                verb = "dominate" if many else "dominates"
                sents.append(f"{_cap(self._np_rel(head, rng, level))} {verb} this aerial view of {s_phrase}.")
            rest = items[1:]
        elif rng.random() < .45:
            sents.append(_pick_s(rng, _INTROS).format(s=s_phrase, S=_cap(s_phrase)))
        else:
            sep = _pick_s(rng, (" with ", ", dominated by ", " featuring "))
            sents.append(_pick_s(rng, _OPENERS).format(s=s_phrase) + sep + self._np_rel(items[0], rng, level) + ".")
            rest = items[1:]
        room = 3 - len(sents)  # sentences left for the items, the land cover takes the last one
        groups: list[list[_Item]] = [[] for _ in range(max(1, min(room, len(rest))))]
        for i, it in enumerate(rest):
            groups[min(i, len(groups) - 1) if rng.random() < .6 else i % len(groups)].append(it)
        for g in groups:
            if not g:
                continue
            if len(g) > 1 and rng.random() < .35:
                sents.append(_pick_s(rng, ("There are also ", "The image also contains ", "We can also see ")) +
                             _join([self._np_rel(it, rng, level) for it in g]) + ".")
            else:
                cl = [self._clause(it, rng, level, False) for it in g]
                sents.append(_cap(", and ".join(cl) if len(cl) == 2 and rng.random() < .5 else "; ".join(cl)) + ".")
        cover = self._cover_sentence(rng, level)
        if len(sents) < 4 and rng.random() < .75:
            sents += [cover] if cover else []
        else:
            sents[-1] = sents[-1][:-1] + self._cover_suffix(rng, level) + "."
        if extra and len(sents) < 4:
            sents.append(extra)
        return " ".join(sents)


def _post_verb(post: str, many: bool) -> str:
    """'running east-west' -> 'runs east-west', 'crossing each other' -> 'cross each other', ..."""
    first, _, rest = post.partition(" ")
    verb = {"running": "runs|run", "crossing": "crosses|cross", "oriented": "is oriented|are oriented",
            "that": rest.split(" ")[0] + "s|" + rest.split(" ")[0], "meeting": "meets|meet"}[first]
    if first == "that":
        rest = " ".join(rest.split(" ")[1:])
    return (_agree(verb, many) + " " + rest).strip()


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def fine_grained_caption(spec: SceneSpec, graph: ImageSceneGraph, rng: np.random.Generator) -> str:
    """A fine-grained caption in varied wording (see the module docstring), at most ``MAX_WORDS`` words.

    Every statement is true of the scene: exact counts are the true counts, approximate ones ("about a dozen",
    "more than twenty") bracket them, relations come from the graph. Deterministic given ``rng``'s state.
    """
    cap = _Caption(spec, graph, rng)
    for level in range(4 + len(cap.items) + 3):
        text = cap.render(level)
        if _words(text) <= MAX_WORDS:
            return text
    return text


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
