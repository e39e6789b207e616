"""The command line: every job is an ``rsretrieval <subcommand>`` (``rsretrieval --help`` lists them).

The scripts in ``rayjobs/`` are thin wrappers around these subcommands, for ``ray job submit``;
``rayjobs/full_benchmark.py`` is ``rsretrieval benchmark``. Heavy dependencies (ray, torch, mlflow) are
imported inside the subcommands, so importing this package and ``--help`` stay fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from rsretrieval.cli.bench import add_bench_args, bench_cmd
from rsretrieval.cli.benchmark import (BENCHMARK_HELP, add_benchmark_command, add_seeds_arg, announce_outputs,
                                       benchmark, benchmark_main, outputs_summary)
from rsretrieval.cli.common import (RAW, add_benchmark_args, basic_logging, job_config, load_user_config, run_or_exit,
                                    user_message)
from rsretrieval.cli.jobs import (ANALYZE_HELP, AUDIT_HELP, GENERATE_HELP, SWEEP_HELP, TASK_NAMES, TRAIN_HELP,
                                  add_audit_args, add_generate_args, add_sweep_args, add_train_args, analyze_cmd, audit,
                                  generate_cmd, sweep_cmd, train_cmd)
from rsretrieval.cli.tools import (EVAL_PARSER_HELP, HUMAN_EVAL_HELP, add_eval_parser_args, add_human_eval_args,
                                   add_query_args, add_report_args, add_tables_args, eval_parser_cmd, human_eval_cmd,
                                   list_backbones_cmd, query_cmd, report_cmd, tables_cmd)
from rsretrieval.fake_gemini.serve import DESCRIPTION as FAKE_GEMINI_HELP
from rsretrieval.fake_gemini.serve import add_fake_gemini_args, serve

__all__ = ["AUDIT_HELP", "BENCHMARK_HELP", "GENERATE_HELP", "TASK_NAMES", "add_audit_args", "add_benchmark_args",
           "add_seeds_arg", "announce_outputs", "audit", "audit_main", "benchmark", "benchmark_main", "build_parser",
           "console", "fake_gemini_cmd", "generate_main", "job_config", "list_backbones_cmd", "load_user_config",
           "main", "outputs_summary", "query_cmd", "report_cmd", "run_or_exit", "tables_cmd", "user_message"]


def fake_gemini_cmd(args: argparse.Namespace) -> dict[str, int]:
    """Serve the fake Gemini API in the foreground until Ctrl-C / SIGTERM; returns what it served."""
    return serve(args)


def _no_args(_: argparse.ArgumentParser) -> None:
    """A subcommand without arguments."""


QUERY_HELP = ("Rank the images of the configured dataset split for each text (index: the benchmark's cached "
              "embeddings; computed once if missing).")

# name -> (one-line help, description (None: the help), add arguments, run); in the order --help lists them
COMMANDS: dict[str, tuple[str, str | None, Callable[[argparse.ArgumentParser], None],
                          Callable[[argparse.Namespace], Any]]] = {
    "benchmark": ("the benchmark: every dataset x backbone x matching mode", BENCHMARK_HELP,
                  add_benchmark_command, benchmark),
    "generate": ("generate captions, graphs, text scenes (Gemini / offline)", GENERATE_HELP,
                 add_generate_args, generate_cmd),
    "train": ("train the graph encoder and GMN with Ray Train", TRAIN_HELP, add_train_args, train_cmd),
    "sweep": ("hyperparameter sweep of the graph matcher (Ray Tune)", SWEEP_HELP, add_sweep_args, sweep_cmd),
    "audit": ("duplicate and leakage audit of the configured datasets", AUDIT_HELP, add_audit_args, audit),
    "analyze-datasets": ("dataset diversity: similarities, caption lengths, scenes", ANALYZE_HELP,
                         add_benchmark_args, analyze_cmd),
    "eval-parser": ("score the offline text-graph parser against UCM gold", EVAL_PARSER_HELP,
                    add_eval_parser_args, eval_parser_cmd),
    "human-eval": ("human evaluation: build the forms, score the answers", HUMAN_EVAL_HELP,
                   add_human_eval_args, human_eval_cmd),
    "query": ("rank the images of an indexed dataset for query texts", QUERY_HELP, add_query_args, query_cmd),
    "tables": ("merge runs' results.csv into the thesis-layout tables", None, add_tables_args, tables_cmd),
    "report": ("write the self-contained HTML report of a run", None, add_report_args, report_cmd),
    "backbones": ("list registered backbones", None, _no_args, list_backbones_cmd),
    "bench": ("benchmarks of our own code (rsretrieval bench --help)", None, add_bench_args,
              bench_cmd),
    "fake-gemini": ("local fake Gemini API: rehearse a paid run for free", FAKE_GEMINI_HELP,
                    add_fake_gemini_args, fake_gemini_cmd),
}


def build_parser() -> argparse.ArgumentParser:
    """The ``rsretrieval`` parser with every subcommand of :data:`COMMANDS`."""
    p = argparse.ArgumentParser(prog="rsretrieval", description="Fine-grained RS text-to-image retrieval: one "
                                "command per job (`rsretrieval <command> --help` for each).")
    sub = p.add_subparsers(dest="command", required=True, metavar="<command>")
    for name, (help_, description, add_args, run) in COMMANDS.items():
        c = sub.add_parser(name, help=help_, description=description or help_, formatter_class=RAW)
        add_args(c)
        c.set_defaults(func=run)
    return p


def main(argv: list[str] | None = None) -> Any:
    """Parse ``argv`` and run the subcommand; returns its result (for tests and the rayjobs wrappers)."""
    args = build_parser().parse_args(argv)
    basic_logging()
    return run_or_exit(args.func, args)


def generate_main(argv: list[str] | None = None) -> Any:
    """``rsretrieval generate`` with these arguments (``rayjobs/generate.py``)."""
    return main(["generate", *(argv or [])])


def audit_main(argv: list[str] | None = None) -> Any:
    """``rsretrieval audit`` with these arguments (``rayjobs/audit.py``)."""
    return main(["audit", *(argv or [])])


def console() -> int:
    """The ``rsretrieval`` console script: exit status 0 (``main`` returns results for tests and scripts;
    a console script's return value would be printed to stderr as the exit message)."""
    main(sys.argv[1:])
    return 0


if __name__ == "__main__":
    console()
