"""Offline, deterministic stand-in for the Gemini text-graph prompt (appendix A.1.3).

``HeuristicTextGraphParser`` turns one caption into a :class:`TextGraph` without a model or network: a lexicon
of remote-sensing nouns (longest match first, plurals reduced to the singular) gives the object nodes; count /
colour / size / shape / arrangement / position / orientation words become attribute nodes linked
``object -(type)-> value``; relation phrases ("next to", "surrounded by", "parked along", "north of", ...) link
the nearest object before them to the first object after them, labelled with the phrase as written (lower case).

Normal forms, chosen to match the synthrs ground truth and to keep attribute values comparable:
* counts are digit strings ("eleven" -> "11", "forty-one" -> "41", "a dozen" -> "12"); vague counts are
  "many" (many, lots of, numerous, ...), "several", "some", "a few"; the articles a/an are not counts;
* colours are lower case, "grey" -> "gray", two-word colours kept ("dark green"), "colorful" -> "multicoloured";
  adverbs are folded ("densely" -> "dense", "arranged neatly" -> "neatly arranged");
* one attribute node per distinct value, shared by the objects that have it (attributes are never subjects,
  so sharing cannot create wrong edges); a value equal to an object name is dropped.
Known limits (a heuristic, not a parser): no real PP attachment; "with"/"has" and pronouns ("it", "them") go
to the first object of the clause; unknown nouns are found only when plural and right after a count or colour.
"""

from __future__ import annotations

import re

from rsretrieval.graphs.schema import TextGraph, TextGraphEdge, TextGraphNode

_OBJECTS = frozenset(", ".join([
    "airplane, plane, aircraft, airport, apron, runway, taxiway, terminal, terminal building, hangar, helicopter",
    "building, house, home, mobile home, mobile home park, residential area, commercial area, industrial area",
    "urban area, city, town, village, factory, warehouse, storage tank, tank, container, animal, roof, tower",
    "chimney, church, school, stadium, greenhouse, solar panel, ship, boat, vessel, yacht, harbor, port, dock",
    "pier, wharf, sea, ocean, water, lake, pond, river, riverbank, bank, beach, coast, shore, wave, foam, island",
    "bridge, viaduct, dam, canal, reservoir, road, street, highway, freeway, overpass, intersection, crossroad",
    "roundabout, railway, railroad, rail, train, railway station, station, parking lot, parking, car, vehicle",
    "truck, bus, lane, sidewalk, roadside, tree, forest, woodland, plant, bush, shrub, grass, lawn, turf, meadow",
    "grassland, field, farmland, cropland, farm, crop, soil, ground, bare ground, bare land, land, sand, desert",
    "dune, mountain, hill, rock, snow, chaparral, vegetation, weed, golf course, bunker, trail, path, fairway",
    "baseball diamond, baseball field, tennis court, basketball court, court, soccer field, football field, park, plaza",
    "playground, running track, track, swimming pool, pool, sports facility, person, bird, mark line"]).split(", "))
_IRREGULAR = {"people": "person", "leaves": "leaf", "men": "man", "women": "woman", "children": "child", "buses": "bus",
              "harbours": "harbor", "harbour": "harbor", "aeroplane": "airplane", "aeroplanes": "airplane"}
_NOT_OBJECT = frozenset("kind type sort piece part lot row line side other thing color colour shape size area".split())
_NUM = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve thirteen "
                                   "fourteen fifteen sixteen seventeen eighteen nineteen".split())}
_NUM |= {w: 10 * i for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), 2)}
_COLOURS = ("white black gray grey red blue green yellow brown orange beige teal purple pink cyan silver golden "
            "khaki tan turquoise").split()
_CARDINAL = ("north south east west northeast northwest southeast southwest north-east north-west south-east "
             "south-west").split()
_DIRS = {d: d for d in _CARDINAL + "left right top bottom upper lower edge corner corners front".split()} | {
    "center": "center", "centre": "center", "middle": "center"}
_PARTICIPLES = frozenset("parked docked moored stopped located situated built lying standing placed".split())
_HEAD_RELS = frozenset(["with", "has", "have", "contains", "contain"])  # "X with Y" is about the clause's topic
_FINITE = frozenset("go goes pass passes run runs flow flows constitute constitutes has have contain contains "
                    "consists connects leads cross crosses surround surrounds compose".split())
_DETS = frozenset("the a an this that these those its their another other each".split())
_TOKEN = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*|[.,;:!?()]")
_ATTR_TYPES = frozenset(["count", "color", "size", "shape", "arrangement", "position", "orientation"])


def _table() -> dict[str, tuple[str, str]]:
    """Phrase -> (category, normal form), every fixed multi-word phrase the parser knows."""
    t: dict[str, tuple[str, str]] = {}

    def add(cat: str, spec: str) -> None:  # "phrase=value | phrase | ..."
        for item in spec.split("|"):
            phrase, _, value = item.strip().partition("=")
            t[phrase.strip()] = (cat, value.strip() or phrase.strip())
    add("skip", "there is|there are|there ars|there's|it is|it's|here is|here are|this is|these are|that is|"
        "a piece of|pieces of|a part of|part of|kinds of|kind of|types of|type of|an aerial view of|"
        "a top-down image of|an image of|a satellite image of|in the image|in this image|in the picture|"
        "in this picture|we can see|you can see|can be seen")
    add("count", "many|several|some|few=a few|a few|lots of=many|lot of=many|a lot of=many|plenty of=many|"
        "numerous=many|countless=many|dozens of=many|a large number of=many|large numbers of=many|"
        "a number of=several|multiple=several|a dozen=12|a couple of=2|a pair of=2")
    add("size", "large|small|big|huge|tiny|medium|medium-sized=medium|large-sized=large|small-sized=small|"
        "narrow|wide|long|short|tall|giant|massive|enormous|vast")
    add("shape", "round|circular|rectangular|square|oval|straight|curved|curving|winding|elongated|linear|triangular")
    add("arrangement", "dense|densely=dense|sparse|sparsely=sparse|densely arranged=dense|arranged densely=dense|"
        "densely packed=dense|closely packed|neatly=neatly arranged|neatly arranged|arranged neatly=neatly arranged|"
        "orderly=neatly arranged|in order=neatly arranged|in a row|in rows|in a line|in lines|in a grid|"
        "arranged in lines=in lines|arranged in rows=in rows|arranged in a row=in a row|scattered|"
        "dispersedly=scattered|haphazardly=haphazardly arranged|arranged haphazardly=haphazardly arranged|"
        "haphazardly arranged|pressed together|closed together=close together|close together|side by side|"
        "parallel|parrallel=parallel|crowded")
    add("color", "colorful=multicoloured|colourful=multicoloured|multicolored=multicoloured|multicoloured|"
        "multi-colored=multicoloured|multi-coloured=multicoloured")
    add("color", "|".join(f"{m}{c}={m}{c.replace('grey', 'gray')}"  # "dark green"; "light grey" -> "light gray"
                          for c in _COLOURS for m in ("", "dark ", "light ", "deep ", "pale ")))
    add("color", "dark|light|bright")
    add("orientation", "north-south|east-west|running north-south=north-south|running east-west=east-west")
    add("rel", "next to|near|nearby|beside|besides=beside|surrounded by|surrounding|surround|surrounds|around|"
        "along|alongside|on|in|at|between|across|across from|adjacent to|close to|near to|in front of|behind|"
        "on both sides of|on both banks of|on either side of|on top of|lined with|covered with|covered by|"
        "filled with|full of|crossing|crosses|cross|through|go through|goes through|going through|"
        "pass through|passes through|passing through|run through|runs through|flows through|flow through|"
        "go across|goes across|over|under|above|below|inside|within|outside|with|has|have|contains|contain|"
        "consists of|consisting of|composed of|compose of|constitute|constitutes|by|among|amid|beyond|"
        "connected to|connects|leads to|leading to|vertical to|parallel to|perpendicular to|opposite|"
        "opposite to|towards|toward|into|onto")
    add("and", "and|or|as well as")
    return t


_TABLE = _table()
_MAX_N = max(len(p.split()) for p in _TABLE)


def singular(word: str) -> str:
    """Small rule set: buildings -> building, factories -> factory, boxes -> box; irregulars by table."""
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if len(word) < 4 or not word.endswith("s") or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    return word[:-2] if word.endswith(("ches", "shes", "sses", "xes", "zes")) else word[:-1]


def _number(toks: list[str], i: int) -> tuple[int, int] | None:
    """(value, tokens used) for digits or number words ("one hundred thirty-one"), else None."""
    if toks[i].isdigit():
        return int(toks[i]), 1
    total, cur, j = 0, 0, i
    while j < len(toks):
        parts = toks[j].split("-")
        if all(p in _NUM for p in parts):
            cur += sum(_NUM[p] for p in parts)
        elif toks[j] == "hundred" and j > i:
            cur = max(cur, 1) * 100
        elif toks[j] == "thousand" and j > i:
            total, cur = total + max(cur, 1) * 1000, 0
        elif not (j > i and toks[j] == "and" and toks[j - 1] in ("hundred", "thousand")
                  and toks[j + 1:j + 2] != [] and toks[j + 1].split("-")[0] in _NUM):  # "one hundred and five"
            break
        j += 1
    return (total + cur, j - i) if j > i else None


def _match(toks: list[str], i: int, prev: str) -> tuple[str, str, int]:
    """(category, normal form, tokens used) of the longest known phrase starting at ``toks[i]``."""
    tok = toks[i]
    if " " in tok:  # merged "... each other" phrase
        return "arrangement", tok, 1
    if tok in ".;:!?,()":
        return {",": "comma", "(": "open", ")": "close"}.get(tok, "stop"), tok, 1
    if (num := _number(toks, i)) is not None:
        return "count", str(num[0]), num[1]
    if tok in ("in", "on", "at", "to"):  # position ("in the south") or directional relation ("on the left of")
        j = i + 1 + (i + 1 < len(toks) and toks[i + 1] == "the")
        if j < len(toks) and toks[j] in _DIRS:
            k = j + 1 + (j + 1 < len(toks) and toks[j + 1] in ("side", "part", "corner", "area", "edge"))
            if k < len(toks) and toks[k] == "of":
                return "rel", " ".join(toks[i:k + 1]), k + 1 - i
            return "position", _DIRS[toks[j]], k - i
    if tok in _CARDINAL and i + 1 < len(toks) and toks[i + 1] == "of":
        return "rel", f"{tok} of", 2
    for n in range(min(_MAX_N, len(toks) - i), 0, -1):
        words = toks[i:i + n]
        if (key := " ".join(words)) in _TABLE:
            return (*_TABLE[key], n)
        if (obj := " ".join(words[:-1] + [singular(words[-1])])) in _OBJECTS:
            return "object", obj, n
    if tok in _PARTICIPLES and i + 1 < len(toks) and toks[i + 1] not in _PARTICIPLES:  # "parked along": one level
        cat, val, n = _match(toks, i + 1, prev)
        if cat == "rel":
            return "rel", f"{tok} {val}", n + 1
    if "-" in tok and all(p in _COLOURS for p in tok.split("-")):
        return "color", tok.replace("grey", "gray"), 1
    if tok.endswith("-shaped"):
        return "shape", tok, 1
    if tok in ("it", "them") or tok in _DETS:
        return "pronoun" if tok in ("it", "them") else "det", tok, 1
    if (prev in ("count", "color") and tok.isalpha() and singular(tok) != tok
            and singular(tok) not in _NOT_OBJECT):  # unknown plural after a count/colour: an object
        return "object", singular(tok), 1
    return "word", tok, 1


def _tokens(text: str) -> list[str]:
    """Lower-case word/punctuation tokens, with "X (to|with) each other" merged into one arrangement token."""
    toks = _TOKEN.findall(text.lower().replace("\u2019", "'"))
    out: list[str] = []
    for t in toks:
        out.append(t)
        if len(out) >= 3 and out[-2:] in (["each", "other"], ["one", "another"]):
            start = len(out) - 3 - (out[-3] in ("to", "with") and len(out) >= 4)
            out[start:] = [" ".join(out[start:])]
    return out


class _Builder:
    """Graph under construction plus the left-to-right parsing state."""

    def __init__(self) -> None:
        self.objects: dict[str, None] = {}
        self.edges: dict[tuple[str, str, str], None] = {}  # insertion-ordered set
        self.pending: list[tuple[str, str]] = []  # attributes waiting for their object
        self.reset()

    def reset(self) -> None:  # clause boundary
        self.head: str | None = None  # first object of the clause
        self.last: str | None = None
        self.group: list[str] = []  # coordinated objects left of a relation ("buildings and trees")
        self.rel: tuple[list[str], str] | None = None  # relation waiting for its object
        self.done_rel: tuple[list[str], str] | None = None  # last resolved one, for "by bushes and sand"
        self.conj = self.conj_the = False
        self.tentative: tuple[list[str], str, str] | None = None  # right conjunct, linked unless a verb follows

    def link(self, subjects: list[str], rel: str, obj: str) -> None:
        for s in subjects:
            if s != obj:
                self.edges[(s, rel, obj)] = None

    def flush(self, to: str | None) -> None:
        """Attach waiting non-count attributes to ``to`` (post-modifiers such as "is very dense")."""
        self.edges.update({(to, t, v): None for t, v in self.pending if to is not None and t != "count"})
        self.pending = []

    def graph(self) -> TextGraph:
        attrs = {e[2]: None for e in self.edges if e[2] not in self.objects and e[1] in _ATTR_TYPES}
        edges = [e for e in self.edges if (e[2] in attrs if e[1] in _ATTR_TYPES else e[2] in self.objects)]
        nodes = [TextGraphNode(name=o, type="object") for o in self.objects]
        nodes += [TextGraphNode(name=a, type="attribute") for a in attrs]
        return TextGraph(nodes=nodes, edges=[TextGraphEdge(subject=s, relation=r, object=o) for s, r, o in edges])


class HeuristicTextGraphParser:
    """Rule-based A.1.3 text graph: deterministic, offline, never raises on text input."""

    name: str = "heuristic-parser@v1"

    def parse(self, text: str) -> TextGraph:
        toks = _tokens(text or "")
        b, i, prev, paren = _Builder(), 0, "stop", False
        while i < len(toks):
            cat, val, n = _match(toks, i, prev)
            nxt = _match(toks, i + n, cat)[0] if i + n < len(toks) else "stop"
            if b.tentative is not None and cat not in _ATTR_TYPES and cat != "det":
                if not (cat == "rel" and val.split()[0] in _FINITE):  # "... and some roads go through": new clause
                    b.link(*b.tentative)
                b.tentative = None
            if cat == "stop":
                b.flush(b.last)
                b.reset()
            elif cat in ("and", "comma"):
                b.conj, b.conj_the = prev in ("object", "close"), False
                if nxt not in ("color", "size", "shape", "arrangement", "object"):
                    b.flush(b.last)  # "the water is deep blue and the boats ...": the run of adjectives ended
            elif cat in ("open", "close"):
                paren = cat == "open"
                if not paren:
                    b.flush(b.last)
            elif cat == "count":
                if not paren:  # "(three blue and two green)" breaks a count down, it does not restate it
                    b.pending.append((cat, val))
            elif cat in ("position", "orientation"):
                if b.last is not None:
                    b.edges[(b.last, cat, val)] = None
            elif cat in _ATTR_TYPES:
                b.pending.append((cat, val))
            elif cat == "rel":
                b.flush(b.last)
                subjects = [b.head] if val in _HEAD_RELS and b.head else list(b.group)
                b.rel, b.done_rel, b.conj = ((subjects, val) if subjects else None), None, False
            elif cat == "pronoun" and b.rel is not None and b.head is not None:
                b.link(b.rel[0], b.rel[1], b.head)
                b.rel = None
            elif cat == "object":
                b.objects.setdefault(val, None)
                b.edges.update({(val, t, v): None for t, v in b.pending})
                b.pending = []
                if b.rel is not None:
                    b.link(b.rel[0], b.rel[1], val)
                    b.done_rel, b.rel, b.group = b.rel, None, [val]
                elif b.conj and b.group and not b.conj_the:  # "X and the Y ..." usually opens a new clause
                    b.group.append(val)
                    if b.done_rel is not None:
                        b.tentative = (b.done_rel[0], b.done_rel[1], val)
                else:
                    b.group, b.done_rel = [val], None
                b.head, b.last, b.conj = b.head or val, val, False
            elif cat == "det":
                b.conj_the = b.conj_the or val == "the"
            elif cat == "word":
                b.conj = False
            prev = cat if cat != "det" else prev
            i += n
        if b.tentative is not None:
            b.link(*b.tentative)
        b.flush(b.last)
        return b.graph()

    def generate(self, texts: list[str]) -> list[TextGraph]:
        return [self.parse(t) for t in texts]


def parse_text_graph_heuristic(text: str) -> TextGraph:
    """Convenience: :meth:`HeuristicTextGraphParser.parse`."""
    return HeuristicTextGraphParser().parse(text)
