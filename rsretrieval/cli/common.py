"""Shared pieces of the subcommands: config arguments, config loading, user-error handling, logging."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
RAW = argparse.RawDescriptionHelpFormatter
REPO_ROOT = Path(__file__).resolve().parents[2]  # the checkout (tune_spaces/, tests/data/ live here)


def add_benchmark_args(p: argparse.ArgumentParser) -> None:
    """The config arguments every config-driven job takes: --config, --set, --output-dir, --run-name, ..."""
    p.add_argument("--config", type=Path, default=None, help="YAML benchmark config (default: the embedded default)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set embed.batch_size=32 --set datasets.0.split=val")
    p.add_argument("--output-dir", default=None, help="root folder of run outputs, or an s3:// / gs:// URI "
                   "(benchmark only) (config: output_dir)")
    p.add_argument("--run-name", default=None, help="run folder and MLflow run name (config: run_name)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    p.add_argument("--debug", action="store_true", help="show the traceback of configuration and input errors")
    p.add_argument("--verbose", action="store_true", help="every library's INFO lines on the console too "
                   "(they are always in <run>/run.log)")


def load_user_config(path: Path | None, overrides: list[str], allow_uris: bool = False) -> Any:
    """``load_config``, its file and syntax errors raised as ConfigError (a user error, exit 2).

    Only the benchmark and the sweep mirror an ``s3://`` / ``gs://`` ``output_dir`` or ``cache_dir``
    (``allow_uris``); the other jobs would write under a local folder named like the URI, so they refuse it."""
    import yaml
    from pydantic import ValidationError

    from rsretrieval.config import load_config
    from rsretrieval.pipelines.runtime.preflight import ConfigError
    from rsretrieval.storage import is_uri

    try:
        cfg = load_config(path, overrides)
    except ValidationError:
        raise
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise ConfigError(f"config {path or '(embedded default)'}: {e}") from e
    remote = [f"{k}={getattr(cfg, k)}" for k in ("output_dir", "cache_dir") if is_uri(getattr(cfg, k))]
    if remote and not allow_uris:
        raise ConfigError(f"{', '.join(remote)}: object storage is supported by `rsretrieval benchmark` and `sweep` only, so far; "
                          "give this job local (or shared POSIX) folders")
    return cfg


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


def basic_logging() -> None:
    """INFO lines of every logger on stderr (no-op when logging is already set up)."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)


def print_config(cfg: Any) -> None:
    """The resolved config as YAML on stdout."""
    import yaml

    print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))


def job_overrides(args: argparse.Namespace, run_name: str | None) -> list[str]:
    """The --set overrides plus --output-dir, and --run-name (else ``run_name``, if given)."""
    overrides = list(args.overrides) + ([f"output_dir={args.output_dir}"] if args.output_dir else [])
    name = args.run_name or run_name
    return overrides + ([f"run_name={name}"] if name else [])


def resolve_job_config(args: argparse.Namespace, run_name: str) -> Any:
    """The job's config (named ``run_name`` unless --run-name says otherwise); None after --print-config
    printed it."""
    cfg = load_user_config(args.config, job_overrides(args, run_name))
    if args.print_config:
        print_config(cfg)
        return None
    return cfg


def job_config(parser: argparse.ArgumentParser, argv: list[str] | None, run_name: str) -> tuple[Any, argparse.Namespace]:
    """Parse a job's arguments (``add_benchmark_args`` + its own), set up logging, resolve the config;
    the run is named ``run_name`` unless --run-name says otherwise. Exits 0 after --print-config."""
    args = parser.parse_args(argv)
    basic_logging()
    cfg = resolve_job_config(args, run_name)
    if cfg is None:
        sys.exit(0)
    return cfg, args
