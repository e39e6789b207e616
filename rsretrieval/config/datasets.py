"""Options of dataset formats: the web-scale ones (RS5M-shaped input: webdataset tar shards, metadata tables)
and FIT-RS (instruction conversations)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from rsretrieval.config.base import StrictModel, expand_path


class WebDatasetOptions(StrictModel):
    """How samples of webdataset tar shards (``<key>.jpg`` + ``<key>.txt`` [+ ``<key>.json``]) become captions."""

    caption_field: str | None = Field(None, description="Take the caption from this field of the sample's .json member "
                                      "(a string or a list of strings) instead of its .txt member; None = .txt")
    split: str = Field("test", description="Split of every sample (RS5M has no splits); the evaluated split "
                       "datasets[].split must name it")
    split_field: str | None = Field(None, description="Field of the sample's .json holding its split (train / val / "
                                    "test); samples without it get `split`. None = ignore the json")
    workers: int | None = Field(None, ge=1, description="Shards extracted at once on first read (threads; None = "
                                "min(8, CPU cores))")


class MetadataTableOptions(StrictModel):
    """Columns of a Parquet / CSV metadata table (img2dataset's output tables, or your own)."""

    image_column: str = Field("image", description="Column holding the image path: relative to image_root (default: "
                              "the table's folder) or absolute. http(s) URLs are not downloaded: such rows are skipped")
    image_template: str | None = Field(None, description="Python format string over the row's columns giving the image "
                                       "path instead of image_column, e.g. '{key:.5}/{key}.jpg' for img2dataset's "
                                       "`files` output (5-digit shard folders)")
    caption_column: str = Field("caption", description="Column holding the caption")
    id_column: str | None = Field(None, description="Column naming the image (rows sharing it are captions of one "
                                  "image); None = the image path")
    split_column: str | None = Field(None, description="Column holding the split (train / val / test); None = `split`")
    split: str = Field("test", description="Split of rows without a split column or value")
    status_column: str | None = Field("status", description="img2dataset's download status column: rows whose value "
                                      "is not 'success' are skipped and counted (ignored when the table lacks it)")


# Human prompts that ask for a whole-image caption (regexes, case-insensitive, searched in the human turn with
# the <image> token removed). The exact FIT-RS caption prompts are not shown in the public sources (see
# tests/data/fit_rs/PROVENANCE.md), hence a list the user can replace.
FIT_RS_CAPTION_PATTERNS = [
    r"\[\s*(?:detailed\s+|image\s+)?caption\s*\]",  # GeoChat-style task tag
    r"\b(?:describe|caption|summari[sz]e|depict)\b[^?!]*\b(?:image|picture|photo|scene|scenario)\b",
    r"\b(?:caption|description)\b[^?!]*\b(?:image|picture|photo|scene)\b",
]
# Prompts that match a caption pattern but ask about one region or the relations (region caption, relation
# reasoning, scene-graph generation): not image captions. FIT-RS marks regions with {<cx><cy><w><h>|<angle>}.
FIT_RS_EXCLUDE_PATTERNS = [r"\{\s*<", r"<rbox>", r"\bregion\b", r"\brelation", r"scene\s*graph"]


class FitRSOptions(StrictModel):
    """Files, caption selection and splits of FIT-RS (SkySenseGPT's LLaVA-style instruction JSON / JSONL)."""

    test_annotations: Path | None = Field(None, description="The test file: FIT-RSFG's test_FITRS_image_caption_eval"
                                          ".jsonl ({question_id, image, question, ground_truth}) or a file of "
                                          "conversation records; None = no test split. `annotations` is the train "
                                          "file (FIT-RS-train-1415k.json or train_instruction_imagecaption_65k.json)")
    caption_patterns: list[str] = Field(default_factory=lambda: list(FIT_RS_CAPTION_PATTERNS), description=(
        "Regexes (case-insensitive) of human prompts that ask for an image caption; the next gpt turn is the "
        "caption. ['.*'] takes every answer (a file holding only the caption task)"))
    exclude_patterns: list[str] = Field(default_factory=lambda: list(FIT_RS_EXCLUDE_PATTERNS), description=(
        "Regexes of prompts that are not image captions although a caption pattern matches (region captions, "
        "relations, scene graphs)"))
    split_file: Path | None = Field(None, description="Text/CSV file of '<image file name>,<split>' lines (train / "
                                    "val / test; '#' comments and an 'image,split' header allowed): the split of "
                                    "each listed image, overriding the file's split and the hold-out; unlisted "
                                    "images are left out (e.g. to reproduce the thesis' 4,743 / 1,185 / 1,069 images)")
    val_fraction: float = Field(0.2, ge=0, lt=1, description="Without a split file: this fraction of the train "
                                "images (rounded down) becomes the val split, a seeded hold-out (0.2 gives the "
                                "thesis' ratio 4,743 / 1,185); 0 = no val split")
    val_seed: int = Field(0, description="Seed of the val hold-out (depends only on the seed and the set of train "
                          "image names, not on file order)")
    scene_graphs: Path | None = Field(None, description="STAR annotation folder (a split folder with object-json/ "
                                      "and relationship/, or the folder holding the split folders): each FIT-RS "
                                      "patch's STAR boxes and expert triplets become its ground-truth ('oracle') image "
                                      "graph (patch names <scene>__<size>__<left>___<top> locate the window)")

    _paths = field_validator("test_annotations", "split_file", "scene_graphs", mode="before")(
        lambda cls, v: expand_path(v))


class SimulatedDetectorConfig(StrictModel):
    """The offline stand-in for an object detector on synthrs: its ground-truth boxes, degraded (simulated)."""

    recall: float = Field(0.85, ge=0, le=1, description="Probability that an object of medium or large size is detected")
    small_recall: float = Field(0.6, ge=0, le=1, description="Probability that a small object is detected (detectors "
                                "miss small objects in aerial images most)")
    jitter: float = Field(0.1, ge=0, le=1, description="Standard deviation of each box edge's shift, as a fraction of "
                          "the box's width / height")
    confusion: float = Field(0.05, ge=0, le=1, description="Probability that a detected object gets a look-alike "
                             "category (car <-> container, house <-> building, ...)")
    false_positives: float = Field(0.5, ge=0, description="Mean number of spurious small boxes per image (Poisson)")
    min_score: float = Field(0.3, ge=0, le=1, description="Simulated scores are uniform in [min_score, 1] for true "
                             "objects and in [0, 0.6] for false positives; boxes below boxes.min_score are dropped")


class BoxSourceOptions(StrictModel):
    """Where the 'boxes' image-graph source of a dataset gets its object boxes (graph_matching.image_graphs)."""

    format: Literal["auto", "dota", "dior", "coco", "det_json", "star"] = Field(
        "auto", description="auto = the simulated detector on synthrs (its ground-truth boxes with detector-like noise), "
        "none elsewhere; dota = DOTA label files or Task1 result files; dior = DIOR / DIOR-R VOC XML; coco = COCO "
        "annotation JSON (or a results list with coco_categories); det_json = GraVLM det_json folder; star = STAR "
        "split folder (object-json/ + relationship/, expert relations kept)")
    path: Path | None = Field(None, description="File or folder of the boxes (see format); relative paths from the "
                              "working directory, ~ expanded")
    coco_categories: Path | None = Field(None, description="coco results lists only: the COCO annotation file holding "
                                         "their images and categories")
    min_score: float = Field(0.0, ge=0, le=1, description="Drop detections scored below this (files without scores "
                             "keep every box)")
    category_map: dict[str, str] = Field(default_factory=dict, description="Raw category -> node name, e.g. "
                                         "{'small-vehicle': 'car'}; unmapped names are lower-cased, '-'/'_' as spaces")
    categories: list[str] | None = Field(None, description="Allowed node names (after category_map); boxes of other "
                                         "categories are skipped and listed in skipped-<dataset>.csv; None = any")
    spatial_relations: bool = Field(True, description="Derive relations between object types from box geometry (on, "
                                    "adjacent_to, north_of, ...); for star only where no expert relation links the pair")
    simulated: SimulatedDetectorConfig = Field(default_factory=SimulatedDetectorConfig,
                                               description="Noise of the simulated detector (format auto on synthrs)")
    seed: int = Field(0, description="Seed of the simulated detector (per image: seed and image id)")

    _paths = field_validator("path", "coco_categories", mode="before")(lambda cls, v: expand_path(v))
