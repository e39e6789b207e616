"""Typed configuration of the benchmark: one pydantic model per stage, YAML + CLI overrides.

Every field has a description; the whole config is logged to MLflow as flattened params.
Paths in the config may use ``~`` and environment variables (``$RSR_DATA/ucm``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

DatasetFormat = Literal["synthrs", "karpathy", "nwpu", "precomp", "custom", "harma"]
Mode = Literal["v2v"]


def default_cache_dir() -> Path:
    """``$RSR_CACHE_DIR`` or ``~/.cache/rsretrieval``: trained embedded models, synthetic data, embeddings."""
    return Path(os.environ.get("RSR_CACHE_DIR", Path.home() / ".cache" / "rsretrieval"))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


def _expand(p: Path | str | None) -> Path | None:
    return None if p is None else Path(os.path.expandvars(os.path.expanduser(str(p))))


class SynthRSOptions(_Strict):
    """Size and seed of the embedded synthetic dataset."""

    seed: int = Field(0, description="Seed of the procedural generator; images depend only on (seed, split, index)")
    n_train: int = Field(2000, description="Training images (used to train the embedded rs-tiny backbone)")
    n_val: int = Field(200, description="Validation images")
    n_test: int = Field(300, description="Test images (the benchmark's queries are their captions)")


class DatasetConfig(_Strict):
    """One dataset to benchmark: its native format and where its files are."""

    name: str = Field(description="Name used in tables and ids, e.g. 'ucm', 'rsicd'")
    format: DatasetFormat = Field(description="Native annotation format: synthrs, karpathy, nwpu, precomp, custom, harma")
    annotations: Path | None = Field(None, description="Annotation file (JSON/CSV/JSONL) or precomp folder; unused for synthrs")
    image_root: Path | None = Field(None, description="Folder holding the image files; unused for synthrs")
    split: str = Field("test", description="Split whose captions are the queries and whose images are the gallery")
    limit_images: int | None = Field(None, description="Keep only the first N images of the split (quick runs); None = all")
    synthrs: SynthRSOptions = Field(default_factory=SynthRSOptions, description="Options of the synthetic dataset (format synthrs)")

    _paths = field_validator("annotations", "image_root", mode="before")(lambda cls, v: _expand(v))


class RsTinyOptions(_Strict):
    """Training of the embedded backbone ``rs-tiny`` on the synthrs train split (cached by config hash)."""

    epochs: int = Field(30, description="Epochs over the synthrs train split; one random caption per image per epoch")
    batch_size: int = Field(128, description="Images per batch (InfoNCE over the batch)")
    lr: float = Field(2e-3, description="Peak AdamW learning rate (cosine schedule with warm-up)")
    weight_decay: float = Field(0.05, description="AdamW weight decay")
    seed: int = Field(0, description="Seed of initialisation and caption sampling")
    threads: int | None = Field(None, description="torch CPU threads while training (None = torch default)")
    train_data: SynthRSOptions = Field(default_factory=SynthRSOptions, description="The synthrs dataset whose train split trains rs-tiny")


class BackboneConfig(_Strict):
    """One backbone: a registry name and, for real models, where its checkpoint is."""

    name: str = Field(description="Registry name (see `rsretrieval backbones`), e.g. 'rs-tiny', 'RemoteCLIP-ViT-B-32'")
    checkpoint: Path | None = Field(None, description="Checkpoint file (or hf-hub style folder); overrides checkpoint_dir")
    checkpoint_dir: Path | None = Field(None, description="Folder holding the registry's expected checkpoint file name; default $RSR_CHECKPOINT_DIR")
    rs_tiny: RsTinyOptions = Field(default_factory=RsTinyOptions, description="Training options when name is rs-tiny")

    _paths = field_validator("checkpoint", "checkpoint_dir", mode="before")(lambda cls, v: _expand(v))


class EmbedConfig(_Strict):
    """The Ray Data embedding stage."""

    batch_size: int = Field(64, description="Images or captions per map_batches batch")
    concurrency: int = Field(1, description="Embedding actors in the pool (one per GPU on a GPU cluster)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = cuda when the worker has a GPU")
    num_gpus_per_actor: float = Field(0.0, description="GPUs reserved per embedding actor (set 1 on GPU clusters)")
    torch_threads: int | None = Field(None, description="torch intra-op threads per actor (None = torch default)")


class EvalConfig(_Strict):
    """Scoring and metrics."""

    ks: list[int] = Field(default_factory=lambda: [1, 5, 10], description="Recall cut-offs; mR needs 1, 5 and 10")
    chunk_size: int = Field(1024, description="Queries scored per block: memory is chunk_size x gallery size")
    top_k_saved: int = Field(10, description="Top-k image ids saved per query in the per-query Parquet")
    i2t: bool = Field(True, description="Also compute image-to-text recall (for the literature's 6-value mR6)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Device of the scoring matmuls")


class MLflowConfig(_Strict):
    """Experiment tracking."""

    tracking_uri: str | None = Field(None, description="MLflow URI; default $MLFLOW_TRACKING_URI, else sqlite under output_dir")
    experiment: str = Field("rsretrieval-benchmark", description="MLflow experiment name")
    enabled: bool = Field(True, description="Log the run to MLflow")


class RayConfig(_Strict):
    """How to reach Ray."""

    address: str | None = Field(None, description="Cluster address; default $RAY_ADDRESS, else a local cluster")
    num_cpus: int | None = Field(None, description="CPUs of a local cluster (None = all)")


class BenchmarkConfig(_Strict):
    """The full benchmark: datasets x backbones x modes, written under output_dir/run_name."""

    run_name: str = Field("embedded", description="Name of the run: its output folder and MLflow run name")
    output_dir: Path = Field(Path("runs"), description="Root folder of run outputs (results, per-query ranks, mlflow.db)")
    cache_dir: Path = Field(default_factory=default_cache_dir, description="Cache of synthetic data, trained models and embeddings")
    datasets: list[DatasetConfig] = Field(
        default_factory=lambda: [DatasetConfig(name="synthrs", format="synthrs")],
        description="Datasets to benchmark (default: the embedded synthetic dataset)",
    )
    backbones: list[BackboneConfig] = Field(
        default_factory=lambda: [BackboneConfig(name="rs-tiny")],
        description="Backbones to benchmark (default: the embedded rs-tiny, trained on first use)",
    )
    modes: list[Mode] = Field(default_factory=lambda: ["v2v"], description="Matching modes to run")
    variants: list[str] = Field(
        default_factory=lambda: ["original", "fine_grained"],
        description="Caption variants to evaluate when the dataset has them",
    )
    embed: EmbedConfig = Field(default_factory=EmbedConfig, description="Embedding stage")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="Scoring and metrics")
    mlflow: MLflowConfig = Field(default_factory=MLflowConfig, description="Experiment tracking")
    ray: RayConfig = Field(default_factory=RayConfig, description="Ray cluster")

    _paths = field_validator("output_dir", "cache_dir", mode="before")(lambda cls, v: _expand(v))

    @property
    def run_dir(self) -> Path:
        return self.output_dir / self.run_name


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.0.c`` in nested dicts/lists (list items addressed by index), creating dicts."""
    keys = dotted.split(".")
    cur: Any = data
    for i, key in enumerate(keys[:-1]):
        nxt = keys[i + 1]
        if isinstance(cur, list):
            cur = cur[int(key)]
            continue
        if key not in cur or cur[key] is None:
            cur[key] = [] if nxt.isdigit() else {}
        cur = cur[key]
    last = keys[-1]
    if isinstance(cur, list):
        cur[int(last)] = value
    else:
        cur[last] = value


def load_config(path: Path | None = None, overrides: list[str] | None = None) -> BenchmarkConfig:
    """Config from an optional YAML file plus ``key.path=value`` overrides (values parsed as YAML)."""
    data: dict[str, Any] = {}
    if path is not None:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a benchmark config must be a YAML mapping, got {type(data).__name__}")
    if overrides:
        full = BenchmarkConfig(**data).model_dump(mode="json") if data or overrides else {}
        for item in overrides:
            if "=" not in item:
                raise ValueError(f"override {item!r} must look like key.path=value")
            key, raw = item.split("=", 1)
            set_dotted(full, key.strip(), yaml.safe_load(raw))
        data = full
    return BenchmarkConfig(**data)


def flatten(data: Any, prefix: str = "") -> dict[str, str]:
    """Flatten a dumped config to ``a.b.0.c -> str(value)`` (MLflow params)."""
    out: dict[str, str] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(data, list) and data and any(isinstance(v, (dict, list)) for v in data):
        for i, v in enumerate(data):
            out.update(flatten(v, f"{prefix}{i}."))
    else:
        out[prefix.rstrip(".")] = str(data)
    return out
