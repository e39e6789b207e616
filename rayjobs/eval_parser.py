"""Score the offline A.1.3 text-graph parser against the hand-written UCM gold graphs.

    python rayjobs/eval_parser.py                                   # table of P/R/F1 per category
    python rayjobs/eval_parser.py --out runs/parser_eval.csv --per-caption runs/parser_eval_captions.csv

Categories: objects, attributes (object, type, value), attributes_lenient (object, value), relations
(subject, relation, object) and relations_lenient (subject, object); micro-averaged over the gold captions.
See rsretrieval/evaluation/graph_parsing.py for the matching rules, tests/data/ucm/GOLD_GRAPHS.md for the gold.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GOLD = Path(__file__).resolve().parents[1] / "tests" / "data" / "ucm" / "gold_text_graphs.jsonl"


def main(argv: list[str] | None = None) -> Any:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gold", type=Path, default=GOLD, help="gold JSONL (default: the UCM gold set)")
    p.add_argument("--out", type=Path, default=None, help="write the overall table here (CSV)")
    p.add_argument("--per-caption", type=Path, default=None, help="write the per-caption table here (CSV)")
    a = p.parse_args(argv)
    from rsretrieval.evaluation.graph_parsing import evaluate_parser
    from rsretrieval.generation.text_graph_parser import HeuristicTextGraphParser

    parser = HeuristicTextGraphParser()
    result = evaluate_parser(parser.parse, a.gold)
    print(f"{parser.name} on {len(result.per_caption)} gold captions ({a.gold}):")
    print(result.overall.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    for path, table in ((a.out, result.overall), (a.per_caption, result.per_caption)):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            table.to_csv(path, index=False)
            print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
