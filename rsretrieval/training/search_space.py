"""Ray Tune search spaces from YAML (``tune_spaces/*.yaml``): parsing and validation, no Tune run needed.

A space file::

    metric: best_val_mr
    num_samples: 8
    scheduler: {type: asha, grace_period: 2, reduction_factor: 2}
    space:
      graph_matching.train.lr: {type: loguniform, low: 3.0e-4, high: 1.0e-2}
      graph_matching.gmn.bins: {type: choice, values: [8, 16, 32]}

Keys are benchmark config paths (as ``--set`` takes them); every key is checked against
:class:`BenchmarkConfig` with a sample value before any trial starts, so a typo fails at once and
names the file and key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rsretrieval.config import BenchmarkConfig, set_dotted

DOMAIN_KEYS = {"loguniform": ("low", "high"), "uniform": ("low", "high"), "quniform": ("low", "high", "q"),
               "randint": ("low", "high"), "choice": ("values",), "grid": ("values",)}


@dataclass
class SearchSpace:
    path: Path
    space: dict[str, dict[str, Any]]
    metric: str = "best_val_mr"
    num_samples: int = 8
    scheduler: dict[str, Any] = field(default_factory=lambda: {"type": "asha"})


def apply_overrides(base: dict[str, Any], values: dict[str, Any]) -> BenchmarkConfig:
    """``base`` (a dumped config) with ``values`` (config path -> value) set; validated."""
    import copy

    data = copy.deepcopy(base)
    for key, value in values.items():
        set_dotted(data, key, value)
    return BenchmarkConfig(**data)


def load_space(path: str | Path, base: BenchmarkConfig | None = None) -> SearchSpace:
    """Read and check a space file; errors name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"search space {path} does not exist (see tune_spaces/ for examples)")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict) or not isinstance(raw.get("space"), dict) or not raw["space"]:
        raise ValueError(f"{path}: needs a non-empty 'space:' mapping of config paths to domains")
    unknown = set(raw) - {"space", "metric", "num_samples", "scheduler"}
    if unknown:
        raise ValueError(f"{path}: unknown top-level keys {sorted(unknown)}")
    for key, d in raw["space"].items():
        if not isinstance(d, dict) or d.get("type") not in DOMAIN_KEYS:
            raise ValueError(f"{path}: {key}: a domain needs 'type' in {sorted(DOMAIN_KEYS)}, got {d!r}")
        missing = [k for k in DOMAIN_KEYS[d["type"]] if k not in d]
        if missing:
            raise ValueError(f"{path}: {key}: {d['type']} needs {missing}")
        if d["type"] in ("choice", "grid") and (not isinstance(d["values"], list) or not d["values"]):
            raise ValueError(f"{path}: {key}: 'values' must be a non-empty list")
    scheduler = raw.get("scheduler") or {"type": "asha"}
    if not isinstance(scheduler, dict) or scheduler.get("type", "asha") not in ("asha", "fifo"):
        raise ValueError(f"{path}: scheduler must be {{type: asha, ...}} or {{type: fifo}}, got {scheduler!r}")
    space = SearchSpace(path, raw["space"], raw.get("metric", "best_val_mr"), int(raw.get("num_samples", 8)),
                        scheduler)
    base_data = (base or BenchmarkConfig()).model_dump(mode="json")
    for key in space.space:
        values = space.space[key]["values"] if space.space[key]["type"] in ("choice", "grid") else \
            [space.space[key]["low"], space.space[key]["high"]]
        for v in values:  # every listed value must be a valid config value
            try:
                apply_overrides(base_data, {key: v})
            except Exception as exc:  # noqa: BLE001 - re-raised with the file and key
                raise ValueError(f"{path}: {key}={v!r} is not a valid benchmark config value: {exc}") from exc
    return space
