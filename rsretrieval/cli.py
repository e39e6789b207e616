"""Command line: ``rsretrieval benchmark|backbones|audit|query|tables|report``.

``rayjobs/full_benchmark.py`` is the same benchmark entry point as ``rsretrieval benchmark``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, get_args

from rsretrieval.config import GenerationTaskName

BENCHMARK_HELP = """Run every configured dataset x backbone x matching mode on Ray and log to MLflow.

examples:
  rsretrieval benchmark                                   # embedded default (synthrs + rs-tiny)
  rsretrieval benchmark --config rayjobs/configs/quick.yaml --set embed.batch_size=32
  ray job submit --working-dir . -- python rayjobs/full_benchmark.py --config my.yaml
"""


def add_benchmark_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=None, help="YAML benchmark config (default: the embedded default)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set embed.batch_size=32 --set datasets.0.split=val")
    p.add_argument("--output-dir", type=Path, default=None, help="root folder of run outputs (config: output_dir)")
    p.add_argument("--run-name", default=None, help="run folder and MLflow run name (config: run_name)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    p.add_argument("--debug", action="store_true", help="show the traceback of configuration and input errors")
    p.add_argument("--verbose", action="store_true", help="every library's INFO lines on the console too "
                   "(they are always in <run>/run.log)")


def benchmark(args: argparse.Namespace) -> Any:
    """Resolve the config and run the benchmark; prints the results table."""
    import yaml

    from rsretrieval.pipelines.benchmark.run import run_benchmark

    overrides = list(args.overrides)
    if args.output_dir is not None:
        overrides.append(f"output_dir={args.output_dir}")
    if args.run_name is not None:
        overrides.append(f"run_name={args.run_name}")
    cfg = load_user_config(args.config, overrides)
    if args.print_config:
        print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        return None
    if getattr(args, "plan", False):
        from rsretrieval.pipelines.benchmark.plan import build_plan
        from rsretrieval.pipelines.benchmark.plan_report import format_plan

        plan = build_plan(cfg)
        print(format_plan(plan, cfg))
        return plan
    if getattr(args, "seeds", None):
        from rsretrieval.pipelines.benchmark.seeds import run_seeds

        out = run_seeds(cfg, args.seeds)
        print((out / "results_seeds.md").read_text(encoding="utf-8"))
        print(f"mean ± sd over seeds {args.seeds}: {out / 'results_seeds.csv'}")
        return out
    from rsretrieval.console import best_per_mode, setup_logging

    setup_logging(cfg.run_dir / "run.log", verbose=getattr(args, "verbose", False))  # the file opens at its first line
    announce_outputs(cfg)
    result = run_benchmark(cfg)
    if result.findings is not None:
        from rsretrieval.evaluation.findings import findings_console

        print(findings_console(result.findings))
    print("Best cell per mode (mR [95% CI]; every cell: results.md):", *best_per_mode(result.results_csv), sep="\n")
    print(outputs_summary(cfg, result))
    return result


def announce_outputs(cfg: Any) -> None:
    """Say where the run writes, before any work; in a submitted Ray job, also why there."""
    from rsretrieval.config import job_home, submitted_job

    where = f"outputs: {cfg.run_dir}"
    if submitted_job():
        where += (f" (a `ray job submit` job runs in a temporary copy of --working-dir, so relative output paths "
                  f"are taken from $RSR_HOME = {job_home()}; pass an absolute --output-dir to choose)")
    print(where, flush=True)


def outputs_summary(cfg: Any, result: Any) -> str:
    """Absolute paths of what a run wrote, and how to open its MLflow store."""
    from rsretrieval.pipelines.runtime.tracking import tracking_uri

    run_dir = Path(result.run_dir).resolve()
    lines = [f"results: {Path(result.results_csv).resolve()}", f"per-query ranks: {run_dir / 'per_query'}"]
    if (run_dir / "findings.csv").exists():
        lines.append(f"findings: {run_dir / 'findings.csv'}")
    if (run_dir / "report.html").exists():
        lines.append(f"report: {run_dir / 'report.html'}")
    if result.mlflow_run_id:
        uri = tracking_uri(cfg)
        lines.append(f"MLflow run {result.mlflow_run_id}: mlflow ui --backend-store-uri {uri}")
    if (run_dir / "run.log").exists():
        lines.append(f"log: {run_dir / 'run.log'}")
    lines.append(f"wall time: {result.seconds:.1f} s")
    return "\n".join(lines)


def add_seeds_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plan", action="store_true", help="print the plan (cells, stages, which are cached, estimated "
                   "Gemini requests and cost) and exit without running anything")
    p.add_argument("--seeds", type=int, nargs="+", default=None, metavar="S",
                   help="run once per training seed (graph encoder / GMN / heads) and write mean ± sd per cell "
                        "to <output_dir>/<run_name>-seeds/")


def benchmark_main(argv: list[str] | None = None) -> Any:
    """Entry point of ``rayjobs/full_benchmark.py``."""
    p = argparse.ArgumentParser(description=BENCHMARK_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_benchmark_args(p)
    add_seeds_arg(p)
    args = p.parse_args(argv)
    from rsretrieval.console import setup_logging

    setup_logging(None, verbose=args.verbose)
    return run_or_exit(benchmark, args)


def load_user_config(path: Path | None, overrides: list[str]) -> Any:
    """``load_config``, its file and syntax errors raised as ConfigError (a user error, exit 2)."""
    import yaml
    from pydantic import ValidationError

    from rsretrieval.config import load_config
    from rsretrieval.pipelines.runtime.preflight import ConfigError

    try:
        return load_config(path, overrides)
    except ValidationError:
        raise
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise ConfigError(f"config {path or '(embedded default)'}: {e}") from e


def run_or_exit(func: Any, args: argparse.Namespace) -> Any:
    """``func(args)``; a user error (config, dataset, backbone, checkpoint, missing extra) prints one
    message and exits with status 2, its traceback only with ``--debug``."""
    from rsretrieval.pipelines.runtime.preflight import USER_ERRORS

    try:
        return func(args)
    except USER_ERRORS as e:
        if getattr(args, "debug", False):
            raise
        print(f"error: {user_message(e)}", file=sys.stderr)
        sys.exit(2)


def user_message(e: BaseException) -> str:
    """One readable message; pydantic's list of validation errors as ``field: problem`` lines."""
    from pydantic import ValidationError

    if isinstance(e, ValidationError):
        lines = [f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors()]
        return "invalid config:\n  " + "\n  ".join(lines)
    return str(e)


def job_config(parser: argparse.ArgumentParser, argv: list[str] | None, run_name: str) -> tuple[Any, argparse.Namespace]:
    """Parse a job's arguments (``add_benchmark_args`` + its own), set up logging, resolve the config;
    the run is named ``run_name`` unless --run-name says otherwise."""
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = list(args.overrides) + ([f"output_dir={args.output_dir}"] if args.output_dir else [])
    overrides += [f"run_name={args.run_name or run_name}"]
    cfg = load_user_config(args.config, overrides)
    if args.print_config:
        import yaml

        print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        sys.exit(0)
    return cfg, args


GENERATE_HELP = """Generate fine-grained captions, image/text graphs and text scenes with Gemini.

  GEMINI_API_KEY=... python rayjobs/generate.py --config my.yaml --task text_scenes --set generation.backend=gemini
  python rayjobs/generate.py --config my.yaml --task image_graph --dry-run     # count requests, tokens, cost

Responses go to an append-only store (generation.store_dir, default <cache_dir>/generation) as they
arrive; a rerun or resubmitted job requests only what is missing.
"""
TASK_NAMES = list(get_args(GenerationTaskName))


def generate_main(argv: list[str] | None = None) -> Any:
    """Entry point of ``rayjobs/generate.py``."""
    import pandas as pd

    from rsretrieval.pipelines.runtime.ray_session import init_ray
    from rsretrieval.pipelines.jobs.generate import generate
    from rsretrieval.pipelines.runtime.tracking import mlflow_run, metric_key

    p = argparse.ArgumentParser(description=GENERATE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_benchmark_args(p)
    p.add_argument("--task", action="append", choices=TASK_NAMES, help="task(s) to run (default: text_graph, text_scenes)")
    p.add_argument("--variant", default="fine_grained", help="caption variant fed to text tasks (if the dataset has it)")
    p.add_argument("--limit", type=int, default=None, help="only the first N inputs per dataset and task")
    p.add_argument("--dry-run", action="store_true", help="count requests, tokens and cost; send nothing")
    cfg, args = job_config(p, argv, "generate")
    if not args.dry_run:
        init_ray(cfg.ray)
    with mlflow_run(cfg) as tracker:
        rows = generate(cfg, args.task or ["text_graph", "text_scenes"], args.variant, args.limit, args.dry_run)
        df = pd.DataFrame(rows)
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        out = cfg.run_dir / ("generation_estimate.csv" if args.dry_run else "generation.csv")
        df.to_csv(out, index=False)
        tracker.log_artifact(out)
        tracker.log_metrics({metric_key("generation", r["dataset"], r["task"], k): float(r[k]) for r in rows
                             for k in ("requested", "tokens_in", "tokens_out", "cost_usd") if k in r})
    print(df.to_string(index=False))
    print(f"{'estimate' if args.dry_run else 'summary'}: {out}")
    return rows


AUDIT_HELP = """Duplicate and leakage audit of every configured dataset (all splits): perceptual image hashes
(dHash + pHash) and normalised caption texts, within and across splits and datasets.

  python rayjobs/audit.py --config rayjobs/configs/ucm_sample.yaml
  rsretrieval audit --config my.yaml --dhash-max 6 --train-splits train val

Writes <output_dir>/<run_name>/ (default runs/audit/): summary.md/.csv, image_hashes.parquet,
image_duplicates.csv, caption_duplicates.csv, leaks.csv (logged to MLflow). Evaluate without the leaked
items: --set eval.exclude_leaked=runs/audit/leaks.csv on the benchmark.
"""


def add_audit_args(p: argparse.ArgumentParser) -> None:
    from rsretrieval.analysis.audit import AuditOptions

    add_benchmark_args(p)
    d = AuditOptions()
    p.add_argument("--eval-split", default=d.eval_split, help="split checked for leaks (default: test)")
    p.add_argument("--train-splits", nargs="+", default=d.train_splits, help="splits a model may train on")
    p.add_argument("--dhash-max", type=int, default=d.dhash_max, help="dHash bits (of 64) a duplicate may differ by")
    p.add_argument("--phash-max", type=int, default=d.phash_max, help="pHash bits (of 64) a duplicate may differ by")


def audit(args: argparse.Namespace) -> Any:
    """Run the audit of the configured datasets; print summary.md. Returns the AuditResult."""
    import yaml

    from rsretrieval.analysis.audit import AuditOptions, run_audit, write_audit
    from rsretrieval.config import load_config
    from rsretrieval.data.registry import load_dataset
    from rsretrieval.pipelines.runtime.tracking import metric_key, mlflow_run

    overrides = list(args.overrides) + ([f"output_dir={args.output_dir}"] if args.output_dir else [])
    cfg = load_config(args.config, overrides + [f"run_name={args.run_name or 'audit'}"])
    if args.print_config:
        print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        return None
    opts = AuditOptions(eval_split=args.eval_split, train_splits=args.train_splits, dhash_max=args.dhash_max,
                        phash_max=args.phash_max)
    res = run_audit([load_dataset(d, cfg.cache_dir) for d in cfg.datasets], opts)  # all splits: leaks cross them
    with mlflow_run(cfg) as tracker:
        tracker.log_params({f"audit.{k}": v for k, v in opts.model_dump().items()})
        paths = write_audit(res, cfg.run_dir, opts)
        for row in res.summary.to_dict("records"):
            tracker.log_metrics({metric_key("audit", row["dataset"], row["split"], k): float(v)
                                 for k, v in row.items() if k not in ("dataset", "split")})
        for p in paths:
            tracker.log_artifact(p)
    print(paths[-1].read_text(encoding="utf-8"))
    print(f"manifests: {', '.join(p.name for p in paths)} in {cfg.run_dir}")
    return res


def audit_main(argv: list[str] | None = None) -> Any:
    """Entry point of ``rayjobs/audit.py``."""
    p = argparse.ArgumentParser(description=AUDIT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_audit_args(p)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return audit(p.parse_args(argv))


def list_backbones_cmd(_: argparse.Namespace) -> None:
    from rsretrieval.encoders.registry import get_backbone_spec, list_backbones

    for name in list_backbones():
        spec = get_backbone_spec(name)
        print(f"{name:28s} {spec.arch:12s} {getattr(spec, 'checkpoint_file', None) or ''}")


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


def report_cmd(args: argparse.Namespace) -> Path:
    from rsretrieval.analysis.report import build_report, load_run_config

    rcfg = load_run_config(args.run).report
    if args.queries is not None:
        rcfg = rcfg.model_copy(update={"queries": args.queries})
    out = build_report(args.run, rcfg, args.out)
    print(f"report: {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return out


def main(argv: list[str] | None = None) -> Any:
    p = argparse.ArgumentParser(prog="rsretrieval", description="Fine-grained RS text-to-image retrieval")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("benchmark", help="run the benchmark", description=BENCHMARK_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_benchmark_args(b)
    add_seeds_arg(b)
    b.set_defaults(func=benchmark)
    sub.add_parser("backbones", help="list registered backbones").set_defaults(func=list_backbones_cmd)
    au = sub.add_parser("audit", help="duplicate and leakage audit of the configured datasets", description=AUDIT_HELP,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_audit_args(au)
    au.set_defaults(func=audit)
    q = sub.add_parser("query", help="rank the images of an indexed dataset for query texts",
                       description="Rank the images of the configured dataset split for each text (index: the "
                       "benchmark's cached embeddings; computed once if missing).")
    q.add_argument("texts", nargs="+", help="query texts")
    q.add_argument("--config", type=Path, default=None, help="benchmark config (default: the embedded default)")
    q.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    q.add_argument("--dataset", default=None, help="dataset name in the config (default: the first)")
    q.add_argument("--backbone", default=None, help="backbone name in the config (default: the first)")
    q.add_argument("--mode", choices=["v2v", "v2s", "s2v", "s2s", "g2g", "vg2vg"], default="v2v")
    q.add_argument("--crops", choices=["uniform", "regions"], default="uniform", help="image scenes for v2s/s2s")
    q.add_argument("--graphs", default=None, help="image graphs for g2g/vg2vg: generated or oracle (default: the first "
                   "configured source the dataset has)")
    q.add_argument("--similarity", choices=["hungarian", "gmn"], default="hungarian",
                   help="graph similarity for g2g/vg2vg (gmn needs graph_matching.gmn_checkpoint)")
    q.add_argument("--top-k", type=int, default=5)
    q.set_defaults(func=query_cmd)
    t = sub.add_parser("tables", help="merge runs' results.csv and write the thesis-layout tables")
    t.add_argument("runs", nargs="+", type=Path, help="run folders (or results.csv files); later ones win on equal cells")
    t.add_argument("--out", type=Path, default=Path("runs") / "merged", help="output folder (default runs/merged)")
    t.set_defaults(func=tables_cmd)
    r = sub.add_parser("report", help="write the self-contained HTML report of a run (report.html)")
    r.add_argument("run", type=Path, help="run folder (runs/<run_name>/)")
    r.add_argument("--out", type=Path, default=None, help="output file (default <run>/report.html)")
    r.add_argument("--queries", type=int, default=None, help="example queries per dataset x variant (default: the run's config)")
    r.set_defaults(func=report_cmd)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_or_exit(args.func, args)


def console() -> int:
    """The ``rsretrieval`` console script: exit status 0 (``main`` returns results for tests and scripts;
    a console script's return value would be printed to stderr as the exit message)."""
    main(sys.argv[1:])
    return 0


if __name__ == "__main__":
    main(sys.argv[1:])
