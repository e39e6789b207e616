"""Human retrieval evaluation (thesis sec. 6.2): build the forms, then score the collected answers.

    python rayjobs/human_eval.py build --config my.yaml --out runs/human_eval      # form_<variant>.html + answer_key.json
    python rayjobs/human_eval.py score runs/human_eval/answers_*.csv --key runs/human_eval/answer_key.json

Each question: one caption, 9 images of the same scene (1 gold, 8 distractors), asked once with the
original and once with the fine-grained caption. Scores: mean / median % correct and mean / median
unique choices per caption variant (Table 6).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> Any:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write the HTML forms and the answer key")
    b.add_argument("--config", type=Path, default=None, help="benchmark config (first dataset, its split)")
    b.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    b.add_argument("--out", type=Path, default=Path("runs") / "human_eval")
    b.add_argument("--questions", type=int, default=7, help="images asked (one question per image and variant)")
    b.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("score", help="score answer CSVs against the key")
    s.add_argument("answers", nargs="+", type=Path)
    s.add_argument("--key", type=Path, required=True)
    a = p.parse_args(argv)
    from rsretrieval.analysis.human_eval import build_questions, score_answers, write_form

    if a.command == "score":
        table = score_answers(a.answers, a.key)
        print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
        return table
    from rsretrieval.config import load_config
    from rsretrieval.data.registry import evaluation_split, load_dataset

    cfg = load_config(a.config, list(a.overrides))
    dcfg = cfg.datasets[0]
    ds = evaluation_split(load_dataset(dcfg, cfg.cache_dir), dcfg)
    questions = build_questions(ds, a.questions, seed=a.seed)
    paths = write_form(ds, questions, a.out)
    print("\n".join(str(x) for x in paths))
    return paths


if __name__ == "__main__":
    main(sys.argv[1:])
