"""Commands around runs and datasets: ``rsretrieval backbones|query|tables|report|human-eval|eval-parser``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rsretrieval.cli.common import REPO_ROOT, load_user_config


def list_backbones_cmd(_: argparse.Namespace) -> None:
    """Print the registered backbones: name, architecture, checkpoint file."""
    from rsretrieval.encoders.registry import get_backbone_spec, list_backbones

    for name in list_backbones():
        spec = get_backbone_spec(name)
        print(f"{name:28s} {spec.arch:12s} {getattr(spec, 'checkpoint_file', None) or ''}")


def add_query_args(p: argparse.ArgumentParser) -> None:
    """Arguments of ``rsretrieval query``."""
    p.add_argument("texts", nargs="+", help="query texts")
    p.add_argument("--config", type=Path, default=None, help="benchmark config (default: the embedded default)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--dataset", default=None, help="dataset name in the config (default: the first)")
    p.add_argument("--backbone", default=None, help="backbone name in the config (default: the first)")
    p.add_argument("--mode", choices=["v2v", "v2s", "s2v", "s2s", "g2g", "vg2vg"], default="v2v")
    p.add_argument("--crops", choices=["uniform", "regions"], default="uniform", help="image scenes for v2s/s2s")
    p.add_argument("--graphs", default=None, help="image graphs for g2g/vg2vg: generated or oracle (default: the first "
                   "configured source the dataset has)")
    p.add_argument("--similarity", choices=["hungarian", "gmn"], default="hungarian",
                   help="graph similarity for g2g/vg2vg (gmn needs graph_matching.gmn_checkpoint)")
    p.add_argument("--top-k", type=int, default=5)


def query_cmd(args: argparse.Namespace) -> Any:
    """Rank the indexed images for each query text; print the score matrix for the top images."""
    from rsretrieval.config import load_config
    from rsretrieval.pipelines.jobs.query import build_index, format_matrix, query_scores, ranked

    cfg = load_config(args.config, list(args.overrides))
    methods = (args.crops,) if args.mode in ("v2s", "s2s") else ()
    index = build_index(cfg, args.dataset, args.backbone, methods, graphs=args.mode in ("g2g", "vg2vg"))
    scores = query_scores(index, cfg, args.texts, args.mode, args.crops, args.graphs, args.similarity)
    results = ranked(index, scores, args.top_k)
    print(f"{index.dataset} ({len(index.image_ids)} images), backbone {index.backbone}, mode {args.mode}")
    for n, (text, hits) in enumerate(zip(args.texts, results), 1):
        print(f"\nQuery {n}: {text}")
        for h in hits:
            print(f"  {h['rank']:>2}. {h['score']:.4f}  {h['image_id']}  {h['uri']}")
    cols = list(dict.fromkeys(h["image_id"] for hits in results for h in hits[:1]))  # each query's best image
    col_idx = [index.image_ids.index(c) for c in cols]
    print("\n" + format_matrix(scores[:, col_idx], [f"Query {i}" for i in range(1, len(args.texts) + 1)],
                               [f"Img{j}" for j in range(1, len(cols) + 1)]))
    print("  " + ", ".join(f"Img{j} = {c}" for j, c in enumerate(cols, 1)))
    return results


def add_tables_args(p: argparse.ArgumentParser) -> None:
    """Arguments of ``rsretrieval tables``."""
    p.add_argument("runs", nargs="+", type=Path, help="run folders (or results.csv files); later ones win on equal cells")
    p.add_argument("--out", type=Path, default=Path("runs") / "merged", help="output folder (default runs/merged)")


def tables_cmd(args: argparse.Namespace) -> Any:
    """Merge runs' results into one table and write it in the thesis' layouts."""
    from rsretrieval.evaluation.tables import results_frame, write_results
    from rsretrieval.evaluation.thesis_tables import merge_results, write_thesis_tables

    df = results_frame(merge_results(args.runs).to_dict("records"))
    out = Path(args.out)
    write_results(df, out, [f"merged from {', '.join(str(r) for r in args.runs)}"])
    paths = write_thesis_tables(df, out)
    print(paths[0].read_text(encoding="utf-8"))
    print(f"merged results: {out / 'results.csv'}; tables: {', '.join(p.name for p in paths)}")
    return df


def add_report_args(p: argparse.ArgumentParser) -> None:
    """Arguments of ``rsretrieval report``."""
    p.add_argument("run", type=Path, help="run folder (runs/<run_name>/)")
    p.add_argument("--out", type=Path, default=None, help="output file (default <run>/report.html)")
    p.add_argument("--queries", type=int, default=None, help="example queries per dataset x variant (default: the run's config)")


def report_cmd(args: argparse.Namespace) -> Path:
    """Write the HTML report of a run; returns its path."""
    from rsretrieval.analysis.report import build_report, load_run_config

    rcfg = load_run_config(args.run).report
    if args.queries is not None:
        rcfg = rcfg.model_copy(update={"queries": args.queries})
    out = build_report(args.run, rcfg, args.out)
    print(f"report: {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return out


HUMAN_EVAL_HELP = """Human retrieval evaluation (thesis sec. 6.2): build the forms, then score the collected answers.

  rsretrieval human-eval build --config my.yaml --out runs/human_eval      # form_<variant>.html + answer_key.json
  rsretrieval human-eval score runs/human_eval/answers_*.csv --key runs/human_eval/answer_key.json

Each question: one caption, 9 images of the same scene (1 gold, 8 distractors), asked once with the
original and once with the fine-grained caption; the 7 questions draw 7 different scene categories
(fewer labelled scenes: an error, or --on-few-scenes repeat to reuse categories). Scores: mean / median % correct and mean / median
unique choices per caption variant (Table 6).
"""


def add_human_eval_args(p: argparse.ArgumentParser) -> None:
    """The ``build`` and ``score`` steps of ``rsretrieval human-eval``."""
    sub = p.add_subparsers(dest="step", required=True, metavar="{build,score}")
    b = sub.add_parser("build", help="write the HTML forms and the answer key")
    b.add_argument("--config", type=Path, default=None, help="benchmark config (first dataset, its split)")
    b.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    b.add_argument("--out", type=Path, default=Path("runs") / "human_eval")
    b.add_argument("--questions", type=int, default=7,
                   help="images asked, one per scene category (one question per image and variant)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--on-few-scenes", choices=["error", "repeat"], default="error",
                   help="fewer labelled scenes than questions: stop (error) or reuse scene categories (repeat)")
    s = sub.add_parser("score", help="score answer CSVs against the key")
    s.add_argument("answers", nargs="+", type=Path)
    s.add_argument("--key", type=Path, required=True)


def human_eval_cmd(args: argparse.Namespace) -> Any:
    """``build``: write the forms (returns their paths); ``score``: the Table 6 scores (returns the table)."""
    from rsretrieval.analysis.human_eval import build_questions, score_answers, write_form

    if args.step == "score":
        table = score_answers(args.answers, args.key)
        print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
        return table
    from rsretrieval.data.registry import evaluation_split, load_dataset

    cfg = load_user_config(args.config, list(args.overrides))
    dcfg = cfg.datasets[0]
    ds = evaluation_split(load_dataset(dcfg, cfg.cache_dir), dcfg)
    questions = build_questions(ds, args.questions, seed=args.seed, on_few_scenes=args.on_few_scenes)
    paths = write_form(ds, questions, args.out)
    print("\n".join(str(x) for x in paths))
    return paths


EVAL_PARSER_HELP = """Score the offline A.1.3 text-graph parser against the hand-written UCM gold graphs.

  rsretrieval eval-parser                                   # table of P/R/F1 per category
  rsretrieval eval-parser --out runs/parser_eval.csv --per-caption runs/parser_eval_captions.csv

Categories: objects, attributes (object, type, value), attributes_lenient (object, value), relations
(subject, relation, object) and relations_lenient (subject, object); micro-averaged over the gold captions.
See rsretrieval/evaluation/graph_parsing.py for the matching rules, tests/data/ucm/GOLD_GRAPHS.md for the gold.
"""
GOLD = REPO_ROOT / "tests" / "data" / "ucm" / "gold_text_graphs.jsonl"


def add_eval_parser_args(p: argparse.ArgumentParser) -> None:
    """Arguments of ``rsretrieval eval-parser``."""
    p.add_argument("--gold", type=Path, default=GOLD, help="gold JSONL (default: the UCM gold set)")
    p.add_argument("--out", type=Path, default=None, help="write the overall table here (CSV)")
    p.add_argument("--per-caption", type=Path, default=None, help="write the per-caption table here (CSV)")


def eval_parser_cmd(args: argparse.Namespace) -> Any:
    """Score the heuristic parser; prints the overall table. Returns the ParserEvaluation."""
    from rsretrieval.evaluation.graph_parsing import evaluate_parser
    from rsretrieval.generation.text_graph_parser import HeuristicTextGraphParser

    parser = HeuristicTextGraphParser()
    result = evaluate_parser(parser.parse, args.gold)
    print(f"{parser.name} on {len(result.per_caption)} gold captions ({args.gold}):")
    print(result.overall.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    for path, table in ((args.out, result.overall), (args.per_caption, result.per_caption)):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            table.to_csv(path, index=False)
            print(f"wrote {path}")
    return result
