"""Typed configuration of the benchmark: one pydantic model per stage, YAML + CLI overrides.

Every field has a description; the whole config is logged to MLflow as flattened params.
Paths in the config may use ``~`` and environment variables (``$RSR_DATA/ucm``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from rsretrieval.config.base import (RAY_JOB_ENV, StrictModel, default_cache_dir, expand_path, job_home, local_folder,
                                     output_location, submitted_job)
from rsretrieval.config.datasets import (BoxSourceOptions, FitRSOptions, MetadataTableOptions, SimulatedDetectorConfig,
                                       WebDatasetOptions)
from rsretrieval.config.generation import GenerationConfig, SimulatedVLMConfig
from rsretrieval.config.graphs import (GMNConfig, GraphEncoderConfig, GraphMatchingConfig, GraphTrainingConfig,
                                       HungarianConfig, NodeEmbedderConfig)

DatasetFormat = Literal["synthrs", "karpathy", "nwpu", "precomp", "custom", "harma", "webdataset", "metadata", "fit_rs"]
Mode = Literal["v2v", "v2s", "s2v", "s2s", "g2g", "vg2vg"]
CropMethod = Literal["uniform", "regions"]
SCENE_IMAGE_MODES = ("v2s", "s2s")  # modes that use image scenes (one result per crop method)
SCENE_TEXT_MODES = ("s2v", "s2s")  # modes that use text scenes
GRAPH_MODES = ("g2g", "vg2vg")  # modes that use scene graphs
__all__ = [
    "BackboneConfig", "BenchmarkConfig", "BoxSourceOptions", "CropMethod", "DatasetConfig", "DatasetFormat", "EmbedConfig",
    "EvalConfig", "FILE_STORE_ALLOW_ENV", "FitRSOptions", "GMNConfig", "GRAPH_MODES", "GenerationConfig",
    "GenerationTaskName", "GraphEncoderConfig", "GraphMatchingConfig", "GraphTrainingConfig",
    "HungarianConfig", "ImageScenesConfig", "LateInteractionConfig", "MetadataTableOptions", "MLflowConfig", "Mode",
    "NodeEmbedderConfig", "RayConfig", "RegionCropConfig", "ReportConfig", "RsTinyOptions",
    "SCENE_IMAGE_MODES", "SCENE_TEXT_MODES", "SimulatedDetectorConfig", "SimulatedVLMConfig", "SynthRSOptions", "TextScenesConfig",
    "UniformCropConfig", "WebDatasetOptions", "check_tracking_uri", "default_cache_dir", "flatten", "job_home", "load_config", "set_dotted",
    "submitted_job", "RAY_JOB_ENV",
]
GenerationTaskName = Literal["fine_grained_caption", "object_counts", "image_graph", "text_graph", "text_scenes"]


class SynthRSOptions(StrictModel):
    """Size and seed of the embedded synthetic dataset."""

    seed: int = Field(0, description="Seed of the procedural generator; images depend only on (seed, split, index)")
    n_train: int = Field(2000, description="Training images (used to train the embedded rs-tiny backbone)")
    n_val: int = Field(200, description="Validation images")
    n_test: int = Field(300, description="Test images (the benchmark's queries are their captions)")


class DatasetConfig(StrictModel):
    """One dataset to benchmark: its native format and where its files are."""

    name: str = Field(description="Name used in tables and ids, e.g. 'ucm', 'rsicd'")
    format: DatasetFormat = Field(description="Native annotation format: synthrs, karpathy, nwpu, precomp, custom, harma, "
                                  "webdataset (tar shards), metadata (Parquet/CSV table), fit_rs (FIT-RS instruction "
                                  "conversations: the caption answers)")
    annotations: Path | None = Field(None, description="Annotation file (JSON/CSV/JSONL) or precomp folder; webdataset: a "
                                     "folder of .tar shards, one shard or a pattern ('shards/{00000..00099}.tar'); "
                                     "metadata: a .parquet/.csv table or a folder of them; fit_rs: the train file "
                                     "(JSON list or JSONL of conversation records); unused for synthrs")
    image_root: Path | None = Field(None, description="Folder holding the image files; unused for synthrs and webdataset "
                                    "(extracted under cache_dir); metadata: default the table's folder")
    split: str = Field("test", description="Split whose captions are the queries and whose images are the gallery")
    limit_images: int | None = Field(None, description="Keep only the first N images of the split (quick runs); None = all")
    synthrs: SynthRSOptions = Field(default_factory=SynthRSOptions, description="Options of the synthetic dataset (format synthrs)")
    webdataset: WebDatasetOptions = Field(default_factory=WebDatasetOptions, description="Options of format webdataset")
    metadata: MetadataTableOptions = Field(default_factory=MetadataTableOptions, description="Options of format metadata")
    fit_rs: FitRSOptions = Field(default_factory=FitRSOptions, description="Options of format fit_rs (test file, "
                                 "caption prompts, val hold-out or split file, STAR scene graphs)")
    boxes: BoxSourceOptions = Field(default_factory=BoxSourceOptions, description="Object boxes of the 'boxes' "
                                    "image-graph source (graph_matching.image_graphs); a simulated detector on synthrs")
    verify_images: Literal["decode", "exists", "off"] = Field(
        "decode", description="Check of the image files: 'decode' also opens every image of the evaluated split and "
        "quarantines those that cannot be decoded (quarantine.csv in the run folder; their captions leave the "
        "evaluation); 'exists' only fails on missing files; 'off' reads the annotations only")

    _paths = field_validator("annotations", "image_root", mode="before")(lambda cls, v: expand_path(v))


class RsTinyOptions(StrictModel):
    """Training of the embedded backbone ``rs-tiny`` on the synthrs train split (cached by config hash)."""

    epochs: int = Field(10, description="Epochs over the synthrs train split; one random caption per image per epoch "
                        "(with crops: ~10 min on 2 CPU cores, plus ~3 min to cut and caption the crops)")
    batch_size: int = Field(128, description="Images per batch (InfoNCE over the batch)")
    lr: float = Field(2e-3, description="Peak AdamW learning rate (cosine schedule with warm-up)")
    weight_decay: float = Field(0.05, description="AdamW weight decay")
    seed: int = Field(0, description="Seed of initialisation and caption sampling")
    threads: int | None = Field(None, description="torch CPU threads while training (None = torch default)")
    image_variants: list[str] | None = Field(
        default_factory=lambda: ["original"], description="Caption variants paired with whole train images. "
        "['original'] (default) keeps whole-image fine-grained captions out of training, as in the thesis, whose "
        "backbones were never trained on fine-grained captions (sec. 6.4.3): the model learns details only from crops "
        "and meets whole fine-grained captions first at evaluation; None = every variant (a backbone fine-tuned on "
        "the benchmark's own caption style)")
    crops: bool = Field(True, description="Also train on crops of the train images (the benchmark's uniform grid and "
                        "region crops, from image_scenes) captioned from the ground-truth objects inside each crop, so "
                        "the crops the scene modes embed are in distribution; false = whole images only")
    crops_per_image: int = Field(2, ge=1, description="Crop pairs per train image per epoch (drawn at random from its "
                                 "crops), besides the image itself (2: chosen on the synthrs validation split)")
    train_data: SynthRSOptions = Field(default_factory=SynthRSOptions, description="The synthrs dataset whose train split trains rs-tiny")


class BackboneConfig(StrictModel):
    """One backbone: a registry name and, for real models, where its checkpoint is."""

    name: str = Field(description="Registry name (see `rsretrieval backbones`), e.g. 'rs-tiny', 'RemoteCLIP-ViT-B-32'")
    checkpoint: Path | None = Field(None, description="Checkpoint file (or hf-hub style folder); overrides checkpoint_dir")
    checkpoint_dir: Path | None = Field(None, description="Folder holding the registry's expected checkpoint file name; default $RSR_CHECKPOINT_DIR")
    rs_tiny: RsTinyOptions = Field(default_factory=RsTinyOptions, description="Training options when name is rs-tiny")

    _paths = field_validator("checkpoint", "checkpoint_dir", mode="before")(lambda cls, v: expand_path(v))


class EmbedConfig(StrictModel):
    """The Ray Data embedding stage."""

    batch_size: int = Field(64, description="Images or captions per map_batches batch")
    concurrency: int = Field(1, description="Embedding actors in the pool (one per GPU on a GPU cluster)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = cuda when the worker has a GPU")
    num_gpus_per_actor: float = Field(0.0, description="GPUs reserved per embedding actor (set 1 on GPU clusters)")
    torch_threads: int | None = Field(None, description="torch intra-op threads per actor (None = the node's cores / concurrency; Ray itself starts workers with 1)")


class EvalConfig(StrictModel):
    """Scoring and metrics."""

    ks: list[int] = Field(default_factory=lambda: [1, 5, 10], description="Recall cut-offs; mR needs 1, 5 and 10")
    chunk_size: int = Field(1024, description="Queries scored per block: memory is chunk_size x gallery size")
    top_k_saved: int = Field(10, description="Top-k image ids saved per query in the per-query Parquet")
    i2t: bool = Field(True, description="Also compute image-to-text recall (for the literature's 6-value mR6)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Device of the scoring matmuls")
    shortlist_k: int | None = Field(None, ge=1, description="Two-stage retrieval: every mode except V2V reranks only "
                                    "the V2V top-k images of each query (None = full query x image matrices). "
                                    "Must be >= the largest K; results report shortlist_recall, the ceiling")
    shortlist_backend: Literal["exact", "faiss"] = Field("exact", description="V2V shortlist: blocked exact top-k "
                                                         "(bounded memory) or a FAISS flat index (extra [faiss])")
    bootstrap_resamples: int = Field(1000, ge=0, description="Bootstrap resamples over queries for the CIs of R@K/mR "
                                     "and the paired test vs V2V (0 = no CI or p-value columns; findings.csv still bootstraps, with 1000)")
    bootstrap_seed: int = Field(0, description="Seed of the bootstrap and permutation draws")
    confidence: float = Field(0.95, gt=0, lt=1, description="CI level; 1 - confidence is the significance level of "
                              "the 'significant wins only' rows")
    paired_test: Literal["permutation", "bootstrap"] = Field(
        "permutation", description="One-sided paired test of 'mode beats V2V' on the same queries: sign-flip "
        "permutation or paired bootstrap")
    duplicate_aware: bool = Field(True, description="Add dedup_*, mp_* (multi-positive) and ceiling_* R@K/mR columns "
                                  "(identical normalised caption texts)")
    exclude_leaked: Path | None = Field(None, description="leaks.csv of an audit run (rayjobs/audit.py): its test "
                                        "images and captions are removed before evaluation (counts in the notes)")

    _paths = field_validator("exclude_leaked", mode="before")(lambda cls, v: expand_path(v))

    @model_validator(mode="after")
    def _shortlist_covers_k(self) -> "EvalConfig":
        if self.shortlist_k is not None and self.shortlist_k < max(self.ks):
            raise ValueError(f"eval.shortlist_k={self.shortlist_k} < the largest K ({max(self.ks)}): R@{max(self.ks)} "
                             "would count every query outside the shortlist as a miss it may not be")
        return self


class ReportConfig(StrictModel):
    """The self-contained HTML report of a run (report.html)."""

    enabled: bool = Field(True, description="Write report.html at the end of the run (also: `rsretrieval report RUN_DIR`)")
    queries: int = Field(3, ge=0, description="Example queries per dataset x caption variant, drawn at random (not picked)")
    top_k: int = Field(5, ge=1, le=10, description="Retrieved images shown per example and method (<= eval.top_k_saved)")
    thumbnail_px: int = Field(88, ge=32, le=256, description="Longest side of the embedded JPEG thumbnails")
    seed: int = Field(0, description="Seed of the example-query draw")


class UniformCropConfig(StrictModel):
    """Uniform cropping with overlap (UC, thesis sec. 4.2.2)."""

    grid: int = Field(3, ge=1, description="Patches per side: grid x grid crops (3 -> 9 crops + the full image)")
    overlap: float = Field(0.2, ge=0.0, lt=1.0, description="Overlap of neighbouring patches as a fraction of a patch side")


class RegionCropConfig(StrictModel):
    """Segment boxes clustered into regions (SAM-based cropping, SC; thesis sec. 4.2.2)."""

    segmenter: Literal["auto", "sam2", "felzenszwalb", "slic"] = Field(
        "auto", description="auto = sam2 when sam2_checkpoint is set, else felzenszwalb (recorded as method 'segments')")
    sam2_checkpoint: Path | None = Field(None, description="SAM 2 checkpoint file, e.g. sam2.1_hiera_tiny.pt")
    sam2_config: str = Field("configs/sam2.1/sam2.1_hiera_t.yaml", description="sam2 model config matching the checkpoint")
    sam2_points_per_side: int = Field(16, description="SAM 2 automatic mask generator: point grid per side")
    sam2_points_per_batch: int = Field(64, description="SAM 2 points decoded per batch (memory vs speed)")
    sam2_pred_iou_thresh: float = Field(0.7, description="SAM 2: drop masks with lower predicted IoU")
    sam2_stability_score_thresh: float = Field(0.85, description="SAM 2: drop masks with lower stability score")
    sam2_max_side: int = Field(1024, description="Images are downscaled to this side before SAM 2 (boxes map back)")
    segment_max_side: int = Field(512, description="Images are downscaled to this side before the classical segmenter")
    felzenszwalb_scale: float = Field(300.0, description="Felzenszwalb: higher = larger segments")
    felzenszwalb_sigma: float = Field(0.8, description="Felzenszwalb: Gaussian pre-smoothing")
    felzenszwalb_min_size: int = Field(40, description="Felzenszwalb: minimum segment size in pixels")
    slic_segments: int = Field(48, description="SLIC: approximate number of superpixels")
    max_regions: int = Field(9, ge=1, description="At most this many aggregated regions per image (plus the full image)")
    min_area_frac: float = Field(0.002, description="Segment boxes smaller than this fraction of the image are dropped")
    max_area_frac: float = Field(0.9, description="Boxes/regions larger than this fraction are dropped (the full image covers them)")
    merge_distance: float = Field(0.25, description="Cluster cut (complete linkage): box centres of one region lie within this image-normalised distance")
    min_side_frac: float = Field(0.15, description="Regions are grown to at least this fraction of each image side")

    _paths = field_validator("sam2_checkpoint", mode="before")(lambda cls, v: expand_path(v))


class ImageScenesConfig(StrictModel):
    """Image scenes: the full image (meta-scene) plus crops, cut from the original-resolution file."""

    methods: list[CropMethod] = Field(default_factory=lambda: ["uniform", "regions"],
                                      description="Crop methods benchmarked in V2S/S2S (one result column each)")
    include_full: bool = Field(True, description="Keep the full image as scene 0 (the thesis' meta-scene)")
    uniform: UniformCropConfig = Field(default_factory=UniformCropConfig, description="Uniform grid with overlap")
    regions: RegionCropConfig = Field(default_factory=RegionCropConfig, description="Segment boxes -> regions")
    concurrency: int = Field(1, description="Segmenting actors (SAM 2 on GPU: one per GPU)")
    num_gpus_per_actor: float = Field(0.0, description="GPUs reserved per segmenting actor")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Device of SAM 2")


class TextScenesConfig(StrictModel):
    """Text scenes (thesis sec. 4.3.2, prompt A.1.4): self-contained sub-scenes of a caption."""

    generator: Literal["split", "gemini"] = Field(
        "split", description="'split': the offline deterministic sentence/clause splitter; 'gemini': prompt A.1.4 "
        "through the generation stage (needs generation.backend=gemini)")
    max_scenes: int = Field(6, ge=1, description="At most this many scenes per caption (A.1.4: 6)")
    include_full: bool = Field(True, description="Keep the whole caption as scene 0; it is always kept when no scene results")
    short_caption_words: int = Field(12, description="Splitter: single-sentence captions under this many words give no scenes")
    min_scene_words: int = Field(4, description="Splitter: fragments shorter than this join their neighbour")
    max_scene_words: int = Field(30, description="Splitter: longer sentences are split at clause boundaries")


class LateInteractionConfig(StrictModel):
    """Scene matching (thesis eq. 2)."""

    aggregation: Literal["max-mean", "mean-mean"] = Field(
        "max-mean", description="max-mean = Q-MAM (max over document vectors, mean over query vectors); mean-mean = mean of all pairs")
    chunk_size: int = Field(256, description="Queries scored per block (memory: chunk x query scenes x images x image scenes)")


FILE_STORE_ALLOW_ENV = "MLFLOW_ALLOW_FILE_STORE"


def check_tracking_uri(uri: str | None, where: str) -> str | None:
    """The URI, unless it is an MLflow file store ('./mlruns', 'file:...'): MLflow 3 refuses those at the
    first log call unless $MLFLOW_ALLOW_FILE_STORE=true, so say it here, before any work is done."""
    from urllib.parse import urlparse

    if uri is None or uri in ("databricks", "databricks-uc", "uc"):
        return uri
    scheme = urlparse(uri).scheme
    if scheme in ("", "file") or len(scheme) == 1:  # len 1: a Windows drive letter, i.e. a path
        if os.environ.get(FILE_STORE_ALLOW_ENV, "").lower() in ("1", "true"):
            return uri
        raise ValueError(
            f"{where}={uri!r} is an MLflow file store, which MLflow 3 no longer accepts (maintenance mode) and which "
            "loses updates with concurrent writers. Use a database, e.g. 'sqlite:////abs/path/mlflow.db' (the "
            "default, under output_dir), or a tracking server 'http://host:5000'; `mlflow migrate-filestore` "
            f"moves an existing ./mlruns. To keep the file store anyway set ${FILE_STORE_ALLOW_ENV}=true.")
    return uri


class MLflowConfig(StrictModel):
    """Experiment tracking."""

    tracking_uri: str | None = Field(None, description="MLflow URI; default $MLFLOW_TRACKING_URI, else sqlite under output_dir")
    experiment: str = Field("rsretrieval-benchmark", description="MLflow experiment name")
    enabled: bool = Field(True, description="Log the run to MLflow")

    _uri = field_validator("tracking_uri")(lambda cls, v: check_tracking_uri(v, "mlflow.tracking_uri"))


class RayConfig(StrictModel):
    """How to reach Ray."""

    address: str | None = Field(None, description="Cluster address; default $RAY_ADDRESS, else the live cluster of the "
                                "last `ray start` on this machine, else a new local instance")
    num_cpus: int | None = Field(None, description="CPUs of a local cluster (None = all)")
    log_to_driver: bool = Field(False, description="Print Ray workers' stdout/stderr on the driver's console (they are "
                                "always in Ray's session logs, /tmp/ray/session_latest/logs)")


class BenchmarkConfig(StrictModel):
    """The full benchmark: datasets x backbones x modes, written under output_dir/run_name."""

    run_name: str = Field("embedded", description="Name of the run: its output folder and MLflow run name")
    output_dir: Path | str = Field(Path("runs"), validate_default=True,
                                   description="Root folder of run outputs (results, per-query ranks, mlflow.db); a relative "
                                   "path is taken from the working directory, in a `ray job submit` job from $RSR_HOME "
                                   "(default ~/rsretrieval), because the job's working directory is a temporary copy; "
                                   "an s3:// or gs:// URI: the run is staged locally and uploaded (README)")
    cache_dir: Path | str = Field(default_factory=default_cache_dir, validate_default=True,
                                  description="Cache of synthetic data, trained models and embeddings (relative: as "
                                  "output_dir; a URI: worked on in a local mirror synchronised with the bucket)")
    datasets: list[DatasetConfig] = Field(
        default_factory=lambda: [DatasetConfig(name="synthrs", format="synthrs")],
        description="Datasets to benchmark (default: the embedded synthetic dataset)",
    )
    backbones: list[BackboneConfig] = Field(
        default_factory=lambda: [BackboneConfig(name="rs-tiny")],
        description="Backbones to benchmark (default: the embedded rs-tiny, trained on first use)",
    )
    modes: list[Mode] = Field(default_factory=lambda: ["v2v", "v2s", "s2v", "s2s", "g2g", "vg2vg"],
                              description="Matching modes: v2v (global vectors), v2s/s2v/s2s (scene sets, Q-MAM), "
                              "g2g/vg2vg (scene graphs: Hungarian, GMN; vg2vg adds the global cosine)")
    variants: list[str] = Field(
        default_factory=lambda: ["original", "fine_grained"],
        description="Caption variants to evaluate when the dataset has them",
    )
    image_scenes: ImageScenesConfig = Field(default_factory=ImageScenesConfig, description="Image crops for V2S/S2S")
    text_scenes: TextScenesConfig = Field(default_factory=TextScenesConfig, description="Caption scenes for S2V/S2S")
    late_interaction: LateInteractionConfig = Field(default_factory=LateInteractionConfig, description="Scene scoring")
    graph_matching: GraphMatchingConfig = Field(default_factory=GraphMatchingConfig, description="G2G / VG2VG graph matching")
    generation: GenerationConfig = Field(default_factory=GenerationConfig, description="Caption/graph/scene generation")
    generate: list[GenerationTaskName] = Field(
        default_factory=list, description="Generation tasks to run on every dataset besides what the modes need "
        "(outputs in generated/<dataset>/<task>.parquet, cost in generation.csv)")
    embed: EmbedConfig = Field(default_factory=EmbedConfig, description="Embedding stage")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="Scoring and metrics")
    report: ReportConfig = Field(default_factory=ReportConfig, description="HTML report of the run")
    mlflow: MLflowConfig = Field(default_factory=MLflowConfig, description="Experiment tracking")
    ray: RayConfig = Field(default_factory=RayConfig, description="Ray cluster")

    _outputs = field_validator("output_dir", "cache_dir", mode="before")(lambda cls, v: output_location(v))

    @model_validator(mode="after")
    def _generators_available(self) -> "BenchmarkConfig":
        if self.text_scenes.generator == "gemini" and self.generation.backend != "gemini":
            raise ValueError("text_scenes.generator=gemini needs generation.backend=gemini (and a key in GEMINI_API_KEY); "
                             "the offline text scenes are text_scenes.generator=split")
        return self

    @property
    def local_output_dir(self) -> Path:
        """output_dir, or its local staging folder when it is a URI."""
        return local_folder(self.output_dir)

    @property
    def run_dir(self) -> Path:
        """The run's folder on this machine (staged here and uploaded when output_dir is a URI)."""
        return self.local_output_dir / self.run_name

    @property
    def run_location(self) -> str:
        """Where the run's outputs end up: run_dir, or ``<output_dir URI>/<run_name>``."""
        return f"{str(self.output_dir).rstrip('/')}/{self.run_name}" if isinstance(self.output_dir, str) else str(self.run_dir)


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
