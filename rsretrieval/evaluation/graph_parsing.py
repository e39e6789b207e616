"""How well a text-graph parser reproduces hand-written A.1.3 gold graphs.

A predicted :class:`TextGraph` is compared with a gold one as sets of items, in four categories:

* ``objects``: names of the nodes typed ``object``;
* ``attributes``: ``(object, attribute type, value)`` for every edge that ends in an attribute node;
* ``relations``: ``(subject, relation, object)`` for every edge between two object nodes;
* ``relations_lenient``: the ``(subject, object)`` pairs of those edges, relation label ignored: the label is
  "the exact phrase from the input" (A.1.3), and "parked at" / "at" / "stopped at" for the same fact should not
  count as a miss of the structure;
* ``attributes_lenient``: ``(object, value)``, attribute type ignored (e.g. "medium" typed size vs arrangement).

Matching is exact after a light normalisation applied to both sides alike (lower case, articles dropped,
last word singular, number words -> digits, grey -> gray), so wording that the normal forms treat as equal
("the Roads" / "road", "two" / "2") matches and nothing else does. Normalisation only ever merges items, so it
cannot create a match between two different normalised strings. Scores are micro-averaged: true positives,
false positives and false negatives are summed over captions before P/R/F1 (in percent), so captions with
many items weigh more, as in the usual information-extraction scoring.

The singular rule here is deliberately independent of the parser's own (``text_graph_parser.singular``): the
yardstick must not inherit a bug of the thing it measures.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsretrieval.graphs.schema import TextGraph

CATEGORIES = ("objects", "attributes", "attributes_lenient", "relations", "relations_lenient")
_ARTICLES = frozenset(["a", "an", "the"])
_GREY = re.compile(r"\bgrey\b")  # British spelling; word-bounded so "blue-grey" is caught too
_IRREGULAR = {"people": "person", "men": "man", "women": "woman", "children": "child", "leaves": "leaf",
              "buses": "bus", "geese": "goose", "feet": "foot"}
_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}


def _singular(word: str) -> str:
    """English plural -> singular for ordinary nouns; words that only look plural (grass, bus, is) are kept.

    Written apart from the parser's ``singular`` on purpose: the scorer must not share the code it scores."""
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if len(word) < 4 or not word.endswith("s") or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "sses", "xes", "zes")):
        return word[:-2]
    return word[:-1]


def normalise_name(text: str) -> str:
    """Object name or attribute value in comparable form: "The Storage Tanks" -> "storage tank", "two" -> "2"."""
    words = [w for w in _GREY.sub("gray", text.lower()).split() if w not in _ARTICLES]
    if not words:
        return ""
    if len(words) == 1 and words[0] in _NUMBER_WORDS:
        return _NUMBER_WORDS[words[0]]
    return " ".join(words[:-1] + [_singular(words[-1])])


def normalise_relation(text: str) -> str:
    """Relation label: lower case, articles dropped, spacing collapsed; not singularised ("goes" stays "goes")."""
    return " ".join(w for w in text.lower().split() if w not in _ARTICLES)


def graph_items(graph: TextGraph) -> dict[str, set[tuple[str, ...]]]:
    """The normalised item sets of one graph, one per category of :data:`CATEGORIES`."""
    kinds = {n.name: n.type for n in graph.nodes}
    items: dict[str, set[tuple[str, ...]]] = {c: set() for c in CATEGORIES}
    items["objects"] = {(normalise_name(n.name),) for n in graph.nodes if n.type == "object"}
    for e in graph.edges:
        s, o = normalise_name(e.subject), normalise_name(e.object)
        if kinds.get(e.object) == "attribute":
            items["attributes"].add((s, normalise_relation(e.relation), o))
            items["attributes_lenient"].add((s, o))
        else:
            items["relations"].add((s, normalise_relation(e.relation), o))
            items["relations_lenient"].add((s, o))
    return items


@dataclass(frozen=True)
class Counts:
    """True positives, false positives, false negatives of one category; P/R/F1 in percent, NaN when undefined."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def precision(self) -> float:  # NaN, not 0 or 100: "nothing predicted" is neither right nor wrong
        return 100.0 * self.tp / (self.tp + self.fp) if self.tp + self.fp else math.nan

    @property
    def recall(self) -> float:
        return 100.0 * self.tp / (self.tp + self.fn) if self.tp + self.fn else math.nan

    @property
    def f1(self) -> float:
        denom = 2 * self.tp + self.fp + self.fn  # = harmonic mean of P and R, defined whenever either side has items
        return 100.0 * 2 * self.tp / denom if denom else math.nan


def compare_graphs(predicted: TextGraph, gold: TextGraph) -> dict[str, Counts]:
    """Per-category counts of one predicted graph against its gold graph."""
    pred, ref = graph_items(predicted), graph_items(gold)
    return {c: Counts(len(pred[c] & ref[c]), len(pred[c] - ref[c]), len(ref[c] - pred[c])) for c in CATEGORIES}


def micro_average(per_caption: Iterable[Mapping[str, Counts]]) -> dict[str, Counts]:
    """Counts summed over captions (micro average): read P/R/F1 off the result."""
    total = {c: Counts() for c in CATEGORIES}
    for counts in per_caption:
        total = {c: total[c] + counts[c] for c in CATEGORIES}
    return total


@dataclass(frozen=True)
class GoldCaption:
    """One line of the gold JSONL: which caption (image, sentid, raw text) and its hand-written graph."""

    image: str
    sentid: int
    text: str
    graph: TextGraph
    label: str = ""  # UC Merced class, for per-class breakdowns


def load_gold(path: str | Path) -> list[GoldCaption]:
    """Read the gold JSONL; every graph is validated by the :class:`TextGraph` schema (raises on a bad line)."""
    out = []
    for line_no, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            out.append(GoldCaption(rec["image"], int(rec["sentid"]), rec["text"],
                                   TextGraph.model_validate(rec["graph"]), rec.get("class", "")))
        except Exception as exc:  # name the line: a hand-written file is fixed by reading its line
            raise ValueError(f"{path}:{line_no}: {exc}") from exc
    return out


def _row(counts: Mapping[str, Counts]) -> dict[str, float | int]:
    row: dict[str, float | int] = {}
    for c in CATEGORIES:
        k = counts[c]
        row |= {f"{c}_tp": k.tp, f"{c}_fp": k.fp, f"{c}_fn": k.fn,
                f"{c}_p": k.precision, f"{c}_r": k.recall, f"{c}_f1": k.f1}
    return row


@dataclass(frozen=True)
class ParserEvaluation:
    """Result of :func:`evaluate_parser`: one row per caption, and the micro-averaged table per category."""

    per_caption: Any  # pandas.DataFrame: image, sentid, class, text, <category>_{tp,fp,fn,p,r,f1}
    overall: Any  # pandas.DataFrame: category, tp, fp, fn, precision, recall, f1
    predictions: list[TextGraph]


def overall_table(total: Mapping[str, Counts]) -> Any:
    """DataFrame with one row per category: counts and micro P/R/F1 in percent."""
    import pandas as pd

    return pd.DataFrame([{"category": c, "tp": total[c].tp, "fp": total[c].fp, "fn": total[c].fn,
                          "precision": total[c].precision, "recall": total[c].recall, "f1": total[c].f1}
                         for c in CATEGORIES])


def evaluate_parser(parse: Callable[[str], TextGraph], gold: str | Path | list[GoldCaption]) -> ParserEvaluation:
    """Run ``parse`` over every gold caption's raw text and score it: per-caption rows and the overall table."""
    import pandas as pd

    records = load_gold(gold) if isinstance(gold, (str, Path)) else list(gold)
    preds = [parse(r.text) for r in records]
    counts = [compare_graphs(p, r.graph) for p, r in zip(preds, records)]
    rows = [{"image": r.image, "sentid": r.sentid, "class": r.label, "text": r.text, **_row(k)}
            for r, k in zip(records, counts)]
    return ParserEvaluation(pd.DataFrame(rows), overall_table(micro_average(counts)), preds)
