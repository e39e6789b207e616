"""``rsretrieval benchmark`` (and ``rayjobs/full_benchmark.py``): the main job."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rsretrieval.cli.common import RAW, add_benchmark_args, load_user_config, run_or_exit

BENCHMARK_HELP = """Run every configured dataset x backbone x matching mode on Ray and log to MLflow.

examples:
  rsretrieval benchmark                                   # embedded default (synthrs + rs-tiny)
  rsretrieval benchmark --config rayjobs/configs/quick.yaml --set embed.batch_size=32
  ray job submit --working-dir . -- python rayjobs/full_benchmark.py --config my.yaml
"""


def benchmark(args: argparse.Namespace) -> Any:
    """Resolve the config and run the benchmark; prints the results table."""
    import yaml

    from rsretrieval.pipelines.benchmark.run import run_benchmark

    overrides = list(args.overrides)
    if args.output_dir is not None:
        overrides.append(f"output_dir={args.output_dir}")
    if args.run_name is not None:
        overrides.append(f"run_name={args.run_name}")
    cfg = load_user_config(args.config, overrides, allow_uris=True)
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

    where = f"outputs: {cfg.run_location}"
    if submitted_job():
        where += (f" (a `ray job submit` job runs in a temporary copy of --working-dir, so relative output paths "
                  f"are taken from $RSR_HOME = {job_home()}; pass an absolute --output-dir to choose)")
    print(where, flush=True)


def outputs_summary(cfg: Any, result: Any) -> str:
    """Absolute paths (or URIs: output_dir in object storage) of what a run wrote, and how to open its MLflow store."""
    from rsretrieval.pipelines.runtime.object_storage import staged
    from rsretrieval.pipelines.runtime.tracking import tracking_uri

    run_dir = Path(result.run_dir).resolve()
    lines = [f"results: {staged(Path(result.results_csv), cfg)}", f"per-query ranks: {staged(run_dir / 'per_query', cfg)}"]
    if (run_dir / "findings.csv").exists():
        lines.append(f"findings: {staged(run_dir / 'findings.csv', cfg)}")
    if (run_dir / "report.html").exists():
        lines.append(f"report: {staged(run_dir / 'report.html', cfg)}")
    if result.mlflow_run_id:
        uri = tracking_uri(cfg)
        where = f" (a copy of {str(cfg.output_dir).rstrip('/')}/mlflow.db)" if str(cfg.output_dir) != str(cfg.local_output_dir) else ""
        lines.append(f"MLflow run {result.mlflow_run_id}: mlflow ui --backend-store-uri {uri}{where}")
    if (run_dir / "run.log").exists():
        lines.append(f"log: {staged(run_dir / 'run.log', cfg)}")
    lines.append(f"wall time: {result.seconds:.1f} s")
    return "\n".join(lines)


def add_seeds_arg(p: argparse.ArgumentParser) -> None:
    """--plan and --seeds of the benchmark."""
    p.add_argument("--plan", action="store_true", help="print the plan (cells, stages, which are cached, estimated "
                   "Gemini requests and cost) and exit without running anything")
    p.add_argument("--seeds", type=int, nargs="+", default=None, metavar="S",
                   help="run once per training seed (graph encoder / GMN / heads) and write mean ± sd per cell "
                        "to <output_dir>/<run_name>-seeds/")


def add_benchmark_command(p: argparse.ArgumentParser) -> None:
    """All arguments of ``rsretrieval benchmark``."""
    add_benchmark_args(p)
    add_seeds_arg(p)


def benchmark_main(argv: list[str] | None = None) -> Any:
    """Entry point of ``rayjobs/full_benchmark.py``."""
    p = argparse.ArgumentParser(description=BENCHMARK_HELP, formatter_class=RAW)
    add_benchmark_command(p)
    args = p.parse_args(argv)
    from rsretrieval.console import setup_logging

    setup_logging(None, verbose=args.verbose)
    return run_or_exit(benchmark, args)
