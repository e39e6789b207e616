"""What a person sees while a job runs, and what goes to the run's log file.

The console gets this project's own progress lines (``rsretrieval.*`` at INFO: stages, training
epochs, where outputs go) and every other library's warnings and errors, minus the warnings known to
be false here. Everything else (Ray's, Ray Data's, MLflow's, PyTorch's INFO lines and Python
warnings) goes to ``<run_dir>/run.log`` only, with timestamps and logger names. Worker processes'
output stays in Ray's session logs (``ray.log_to_driver`` brings it to the console).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Iterable, TypeVar

# libraries that attach their own console handlers or chat at INFO; their records go to the log file
LIBRARY_LOGGERS = ("ray", "ray.data", "ray.train", "ray.tune", "ray.air", "mlflow", "alembic", "open_clip",
                   "sentence_transformers", "torch_geometric", "urllib3", "httpx", "filelock", "py.warnings")
# warnings that are false for us: open_clip warns of random weights before the loader loads the real ones;
# Ray's token-auth notice when a local instance starts is about Ray, not this run;
FALSE_WARNINGS = ("No pretrained weights loaded for model", "Token authentication is enabled for this Ray cluster",
                  # Ray Data: we turn its bars off (they flood logs); its actor pools hold the CPUs it counts
                  "Progress bars disabled", "Warning: The Ray cluster currently does not have any available CPUs")
# too many or not for users: one line per results cell (results.csv has them), Ray Train runs by hash
# (pipelines.graph_training names them), Python's deprecation warnings of libraries
FILE_ONLY = ("rsretrieval.pipelines.benchmark.cells", "py.warnings")
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_MARK = "_rsretrieval_handler"
_VERBOSE = [False]  # set by setup_logging: progress bars only on a quiet console
T = TypeVar("T")


class ConsoleFilter(logging.Filter):
    """Our INFO lines; others' warnings and errors, except the known-false ones."""

    def filter(self, record: logging.LogRecord) -> bool:
        if any(record.getMessage().startswith(w) for w in FALSE_WARNINGS):
            return False
        if record.name in FILE_ONLY:
            return False
        if record.name == "rsretrieval" or record.name.startswith("rsretrieval."):
            return record.levelno >= logging.INFO
        return record.levelno >= logging.WARNING


class ConsoleFormatter(logging.Formatter):
    """``HH:MM:SS message``; warnings and errors say so and who raised them."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        msg = record.getMessage()
        if record.levelno >= logging.WARNING:
            msg = f"{record.levelname.lower()} ({record.name}): {msg}"
        if record.exc_info and record.levelno >= logging.ERROR:
            msg += "\n" + self.formatException(record.exc_info)
        return f"{stamp} {msg}"


def _ours(handler: logging.Handler) -> bool:
    return getattr(handler, _MARK, False)


class RunLogHandler(logging.FileHandler):
    """The run's log file, opened (with its folder) at the first record: a run that fails its checks
    before logging anything leaves no folder behind."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8", delay=True)

    def _open(self):  # type: ignore[no-untyped-def]
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


def setup_logging(log_file: Path | None = None, verbose: bool = False) -> Path | None:
    """Route logging: the console as the module docstring says (``verbose``: every INFO line), the log
    file (if given) everything at INFO and above. Idempotent; returns the log file."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    _VERBOSE[0] = verbose
    for h in [h for h in root.handlers if _ours(h) or type(h) is logging.StreamHandler]:
        root.removeHandler(h)  # basicConfig's or an earlier call's
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(ConsoleFormatter() if not verbose else logging.Formatter(FILE_FORMAT))
    if not verbose:
        console.addFilter(ConsoleFilter())
    setattr(console, _MARK, True)
    handlers: list[logging.Handler] = [console]
    if log_file is not None:
        log_file = Path(log_file)
        file = RunLogHandler(log_file)
        file.setLevel(logging.INFO)  # Ray Data sets its own loggers to DEBUG
        file.setFormatter(logging.Formatter(FILE_FORMAT))
        setattr(file, _MARK, True)
        handlers.append(file)
    for h in handlers:
        root.addHandler(h)
    logging.captureWarnings(True)
    if not verbose:  # Hugging Face's "Loading weights" bars (the env var also reaches local Ray workers)
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # a run: Ray, Ray Data and MLflow attach their console handlers on import, so import them before routing
    for lib in ("ray", "ray.data", "mlflow") if log_file is not None else ():
        try:
            importlib.import_module(lib)
        except ImportError:  # pragma: no cover - core dependencies
            pass
    route_library_loggers()
    return log_file


def route_library_loggers() -> None:
    """Take the console handlers off the libraries' own loggers and let their records reach ours (the
    log file, and the console filter). Call again after a library configures itself (``ray.init``)."""
    for name in LIBRARY_LOGGERS:
        lib = logging.getLogger(name)
        for h in list(lib.handlers):
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
                lib.removeHandler(h)
        lib.propagate = True


def progress(iterable: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterable[T]:
    """A progress bar over ``iterable`` for long loops, when a person watches: on a terminal, under
    :func:`setup_logging` without ``verbose``. The bar goes away when the loop ends (the stage's log line
    stays), so it adds no line to a log or a captured console; anywhere else the iterable itself."""
    if not (active() and not _VERBOSE[0] and sys.stderr.isatty()):
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=unit, leave=False, dynamic_ncols=True, file=sys.stderr)


def active() -> bool:
    """Whether :func:`setup_logging` routes this process's logging."""
    return any(_ours(h) for h in logging.getLogger().handlers)


def best_per_mode(results_csv: Path) -> list[str]:
    """One line per dataset x variant x backbone: the best cell of each mode by mR (with its CI)."""
    import pandas as pd

    df = pd.read_csv(results_csv)
    out = []
    for (dataset, variant, backbone), g in df.groupby(["dataset", "variant", "backbone"], sort=False):
        cells = []
        for mode, m in g.groupby("mode", sort=False):
            best = m.loc[m["mR"].idxmax()]
            label = " ".join(str(best[c]) for c in ("crops", "similarity", "training", "graphs")
                             if c in best and str(best[c]) not in ("-", "none", "cosine", "max-mean", "nan"))
            ci = f" [{best['mR_ci_low']:.1f}, {best['mR_ci_high']:.1f}]" if "mR_ci_low" in best else ""
            cells.append(f"{mode.upper()}{(' ' + label) if label else ''} {best['mR']:.2f}{ci}")
        out.append(f"  {dataset} / {variant} / {backbone}: " + "; ".join(cells))
    return out
