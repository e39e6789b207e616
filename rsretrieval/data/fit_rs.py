"""Reader of FIT-RS (SkySenseGPT, Luo et al. 2024): the image-caption answers of its instruction data.

FIT-RS cuts STAR scenes into 512x512 patches (``imgv2_split_512_100_vaild/<STAR scene>__512__<x>___<y>.png``)
and ships LLaVA-style instruction records for many tasks (see tests/data/fit_rs/PROVENANCE.md)::

    train (FIT-RS-train-1415k.json, or train_instruction_imagecaption_65k.json of the per-task zip), a JSON list:
      [{"id": ..., "image": "0000__512__0___0.png",
        "conversations": [{"from": "human", "value": "<image>\\n<prompt>"}, {"from": "gpt", "value": "<answer>"}, ...]}]
    test (FIT-RSFG-Bench/test_FITRS_image_caption_eval.jsonl), one object a line:
      {"question_id": ..., "image": "....png", "question": "<prompt>", "ground_truth": "<caption>"}

Both shapes are accepted in both files (JSON list or JSONL). A gpt turn (or ``ground_truth``) answering a
human prompt that matches ``FitRSOptions.caption_patterns`` and none of ``exclude_patterns`` is a caption
(variant "original"); records of other tasks are ignored and counted. The thesis' val split does not
exist in FIT-RS: a split file, or a seeded hold-out of the train images (default 20 %, the thesis' ratio
4,743 / 1,185). Bad records, missing images and unknown splits become ``SkippedEntry`` rows; the rest is kept.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from rsretrieval.config.datasets import FitRSOptions
from rsretrieval.data._common import abs_uri, read_lines, read_text, require_dir, require_file
from rsretrieval.data.errors import DatasetFormatError, DatasetNotFoundError
from rsretrieval.data.schema import (SPLITS, ReadReport, RSDataset, SkippedEntry, captions_table,
                                     find_duplicate_captions, graphs_table, images_table)

if TYPE_CHECKING:
    from rsretrieval.graphs.schema import ImageSceneGraph

DATASET = "fit_rs"
GROUND_TRUTH = "ground_truth"
FIT_RS_NOTE = ("FIT-RS captions are its 'original' variant but fine-grained in nature: GPT-4 wrote them from the "
               "STAR scene graphs of each 512 px patch (thesis sec. 3), not generic human captions")
_HUMAN = ("human", "user")
_GPT = ("gpt", "assistant")


class _Bad(Exception):
    """One record left out: reason code and a line for people."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind, self.detail = kind, detail


class CaptionSelector:
    """Which human prompts ask for an image caption (compiled ``caption_patterns`` / ``exclude_patterns``)."""

    def __init__(self, options: FitRSOptions) -> None:
        try:
            self.include = [re.compile(p, re.IGNORECASE | re.DOTALL) for p in options.caption_patterns]
            self.exclude = [re.compile(p, re.IGNORECASE | re.DOTALL) for p in options.exclude_patterns]
        except re.error as exc:
            raise ValueError(f"datasets[].fit_rs caption/exclude pattern {exc.pattern!r} is not a regex: {exc}") from None

    def __call__(self, prompt: str) -> bool:
        text = prompt.replace("<image>", " ").strip()
        return any(p.search(text) for p in self.include) and not any(p.search(text) for p in self.exclude)


def verify_files(annotations: Path, image_root: Path,
            options: FitRSOptions | None = None) -> tuple[list[tuple[Path, str]], Path]:
    """The (file, split) pairs and the image folder; a missing one raises, saying what to download where."""
    options = options or FitRSOptions()
    files = [(require_file(annotations, "FIT-RS train annotation file",
                           "Download FIT-RS_Instruction/FIT-RS-train-1415k.json (or train_instruction_imagecaption"
                           "_65k.json from train_data_of_each_individual_task.zip) from huggingface.co/datasets/"
                           "ll-13/FIT-RS and point datasets[].annotations to it."), "train")]
    if options.test_annotations is not None:
        files.append((require_file(options.test_annotations, "FIT-RS test annotation file",
                                   "Download FIT-RSFG/FIT-RSFG-Bench/test_FITRS_image_caption_eval.jsonl from "
                                   "huggingface.co/datasets/ll-13/FIT-RS, or set datasets[].fit_rs.test_annotations: "
                                   "null to read the train file only."), "test"))
    if options.split_file is not None:
        require_file(options.split_file, "FIT-RS split file",
                     "Write one '<image file name>,<split>' line per image, or unset datasets[].fit_rs.split_file "
                     "to hold out val_fraction of the train images.")
    if options.scene_graphs is not None:
        if not Path(options.scene_graphs).is_dir():
            raise DatasetNotFoundError("STAR annotation folder of datasets[].fit_rs.scene_graphs", options.scene_graphs,
                                       "Point it to a STAR split folder (object-json/ and relationship/) or to the "
                                       "folder holding the split folders; or unset it.")
    root = require_dir(image_root, "FIT-RS image folder",
                       "Download FIT-RS_Image/FIT-RS_Images.tar.gz (32 GB) from huggingface.co/datasets/ll-13/FIT-RS, "
                       "extract it and point datasets[].image_root to imgv2_split_512_100_vaild.")
    return files, root


def _records(path: Path, skipped: list[SkippedEntry]) -> Iterator[tuple[str, Any]]:
    """(entry, record) of a JSON list ("[i]") or a JSONL file ("line n"); bad JSONL lines are skipped."""
    text = read_text(path)
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as e:  # one list: nothing after the error can be trusted
            raise DatasetFormatError(path, f"line {e.lineno} column {e.colno}", f"invalid JSON: {e.msg}") from None
        yield from ((f"[{i}]", item) for i, item in enumerate(items))
        return
    for n, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            yield f"line {n}", json.loads(line)
        except json.JSONDecodeError as e:
            skipped.append(SkippedEntry(str(path), f"line {n}", "bad_json", f"invalid JSON at column {e.colno}: {e.msg}"))


def _answer(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Bad("no_caption", f"{what} is empty or not a string: {value!r}"[:200])
    return value.strip()


def parse_record(record: Any, is_caption: CaptionSelector) -> tuple[str, list[str] | None]:
    """(image path, captions) of one record; captions None for a record of another task. Raises _Bad."""
    if not isinstance(record, dict):
        raise _Bad("malformed", f"expected an object, got {type(record).__name__}")
    image = record.get("image")
    if not isinstance(image, str) or not image.strip():
        raise _Bad("malformed", f'missing or invalid "image": {image!r}'[:200])
    image = image.strip().replace("\\", "/")
    if "conversations" in record:
        turns = record["conversations"]
        if not isinstance(turns, list):
            raise _Bad("malformed", f'"conversations" must be a list, got {type(turns).__name__}')
        for t, turn in enumerate(turns):
            if not isinstance(turn, dict) or not isinstance(turn.get("from"), str) or not isinstance(turn.get("value"), str):
                raise _Bad("malformed", f'conversations[{t}] must have string "from" and "value": {turn!r}'[:200])
        captions = []
        for t, turn in enumerate(turns):
            if turn["from"] in _HUMAN and is_caption(turn["value"]):
                nxt = turns[t + 1] if t + 1 < len(turns) else None
                if nxt is None or nxt["from"] not in _GPT:
                    raise _Bad("no_caption", f"caption prompt conversations[{t}] has no gpt answer")
                captions.append(_answer(nxt["value"], f"the gpt answer conversations[{t + 1}]"))
        return image, captions or None
    if "question" in record or "ground_truth" in record:  # FIT-RSFG benchmark shape
        question = record.get("question")
        if not isinstance(question, str):
            raise _Bad("malformed", f'"question" must be a string, got {question!r}'[:200])
        return image, [_answer(record.get("ground_truth"), '"ground_truth"')] if is_caption(question) else None
    raise _Bad("malformed", 'expected "conversations" (train records) or "question" / "ground_truth" (FIT-RSFG)')


def _entry(entry: str, record: Any) -> str:
    """The entry named by position and, where the record has them, its id and image."""
    if not isinstance(record, dict):
        return entry
    extra = [f"id {record[k]!r}" for k in ("id", "question_id") if isinstance(record.get(k), (str, int))][:1]
    extra += [record["image"]] if isinstance(record.get("image"), str) else []
    return f"{entry} ({', '.join(extra)})" if extra else entry


def read_split_file(path: Path, skipped: list[SkippedEntry]) -> dict[str, str]:
    """image file name -> split of a '<name>,<split>' (or whitespace separated) file; bad lines are skipped."""
    splits: dict[str, str] = {}
    for n, line in enumerate(read_lines(path), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = [p.strip() for p in (text.split(",") if "," in text else text.split())]
        if n == 1 and [p.lower() for p in parts] == ["image", "split"]:
            continue
        if len(parts) != 2:
            skipped.append(SkippedEntry(str(path), f"line {n}", "malformed",
                                        f"expected '<image file name>,<split>', got {text!r}"))
            continue
        if parts[1] not in SPLITS:
            skipped.append(SkippedEntry(str(path), f"line {n}", "unknown_split",
                                        f"unknown split {parts[1]!r} of {parts[0]} (expected one of {list(SPLITS)})"))
            continue
        splits[parts[0].replace("\\", "/")] = parts[1]
    return splits


def hold_out(names: list[str], fraction: float, seed: int) -> set[str]:
    """floor(fraction * n) of the names, a seeded sample that does not depend on their order."""
    return set(random.Random(seed).sample(sorted(names), math.floor(fraction * len(names))))


def _assign_splits(images: dict[str, dict[str, Any]], options: FitRSOptions, skipped: list[SkippedEntry],
                   warnings: list[str]) -> None:
    """Apply the split file (unlisted images leave) or the val hold-out of train images, in place."""
    if options.split_file is not None:
        wanted = read_split_file(Path(options.split_file).expanduser(), skipped)
        by_base = {os.path.basename(k): v for k, v in wanted.items()}
        unlisted = [name for name in images if (wanted.get(name) or by_base.get(os.path.basename(name))) is None]
        for name in unlisted:
            del images[name]
        for name, info in images.items():
            info["split"] = wanted.get(name) or by_base[os.path.basename(name)]
        absent = len(wanted) - len(images)
        warnings.append(f"split file {options.split_file}: {len(images)} images kept, {len(unlisted)} captioned images "
                        f"not listed left out" + (f", {absent} listed images have no caption in the annotations"
                                                  if absent > 0 else ""))
        return
    train = [name for name, info in images.items() if info["split"] == "train"]
    val = hold_out(train, options.val_fraction, options.val_seed)
    for name in val:
        images[name]["split"] = "val"
    if val:
        warnings.append(f"val split: {len(val)} of {len(train)} train images held out (val_fraction "
                        f"{options.val_fraction}, seed {options.val_seed}); FIT-RS itself ships train and test only")


def read_fit_rs(
    annotations: Path,
    image_root: Path,
    dataset: str = DATASET,
    options: FitRSOptions | None = None,
    verify_images: bool = True,
) -> RSDataset:
    """Read the caption answers of FIT-RS train (and test) files into the common tables (all splits)."""
    options = options or FitRSOptions()
    files, root = verify_files(annotations, image_root, options)
    is_caption = CaptionSelector(options)
    skipped: list[SkippedEntry] = []
    warnings = [FIT_RS_NOTE]
    images: dict[str, dict[str, Any]] = {}  # image path -> split, captions, where first seen
    ignored = 0
    for path, split in files:
        for entry, record in _records(path, skipped):
            try:
                image, captions = parse_record(record, is_caption)
            except _Bad as bad:
                skipped.append(SkippedEntry(str(path), _entry(entry, record), bad.kind, bad.detail))
                continue
            if captions is None:
                ignored += 1
                continue
            info = images.setdefault(image, {"split": split, "captions": [], "source": str(path),
                                             "where": _entry(entry, record)})
            if info["split"] != split:
                skipped.append(SkippedEntry(str(path), _entry(entry, record), "split_conflict",
                                            f"image {image!r} is already in the {info['split']} file "
                                            f"({Path(info['source']).name} {info['where']})"))
                continue
            info["captions"] += captions
    if ignored:
        warnings.append(f"{ignored} records of other FIT-RS tasks (no caption prompt) ignored")
    if not images:
        raise DatasetFormatError(files[0][0], None, f"no caption answers found ({ignored} records of other tasks, "
                                 f"{len(skipped)} skipped): check datasets[].fit_rs.caption_patterns")
    _assign_splits(images, options, skipped, warnings)
    if verify_images:
        _drop_missing_images(images, root, dataset, skipped)
    several = sum(len(info["captions"]) > 1 for info in images.values())
    if several:
        warnings.append(f"{several} images have more than one caption answer (all kept; the thesis counts 1 per image)")
    image_rows, caption_rows = [], []
    for name, info in images.items():
        image_id = f"{dataset}:{name}"
        image_rows.append({"image_id": image_id, "dataset": dataset, "split": info["split"], "uri": abs_uri(root, name),
                           "scene_label": None})
        caption_rows += [{"caption_id": f"{image_id}#{k}", "image_id": image_id, "text": text, "variant": "original",
                          "split": info["split"]} for k, text in enumerate(info["captions"])]
    captions = captions_table(caption_rows)
    report = ReadReport(source=str(files[0][0]), duplicate_captions=find_duplicate_captions(captions),
                        warnings=warnings, skipped=skipped)
    ds = RSDataset(dataset, images_table(image_rows), captions, None, report)
    if options.scene_graphs is not None:
        ds = star_patch_graphs(Path(options.scene_graphs), ds)
    return ds


def _drop_missing_images(images: dict[str, dict[str, Any]], root: Path, dataset: str,
                         skipped: list[SkippedEntry]) -> None:
    """Images whose file is missing leave with their captions, one SkippedEntry each; none at all raises."""
    missing = [name for name in images if not os.path.isfile(abs_uri(root, name))]
    if missing and len(missing) == len(images):
        raise DatasetNotFoundError(
            f"all {len(images)} image files of dataset '{dataset}' (e.g. {missing[0]})", root,
            "Point datasets[].image_root to the extracted imgv2_split_512_100_vaild folder of FIT-RS_Images.tar.gz, "
            "or set verify_images: off to read the annotations only.")
    for name in missing:
        info = images.pop(name)
        skipped.append(SkippedEntry(info["source"], info["where"], "missing_file",
                                    f"image file {abs_uri(root, name)} not found ({len(info['captions'])} captions "
                                    "left out)"))


def add_scene_graphs(ds: RSDataset, graphs: Mapping[str, "ImageSceneGraph"]) -> RSDataset:
    """``ds`` with ground-truth image graphs (file name -> graph) as ``graphs`` rows: the ``oracle`` image graphs.

    Keys match an image's path as in the annotations, else its base name. Graphs of images not in ``ds``
    are counted in the report's warnings, not added.
    """
    ids = ds.images["image_id"].to_pylist()
    names = {iid.split(":", 1)[1]: iid for iid in ids}
    names.update({os.path.basename(k): v for k, v in list(names.items()) if os.path.basename(k) not in names})
    rows, unmatched = [], 0
    for name, graph in graphs.items():
        owner = names.get(name) or names.get(os.path.basename(name))
        if owner is None:
            unmatched += 1
            continue
        rows.append({"owner_id": owner, "kind": "image_graph", "graph": graph.model_dump_json(), "generator": GROUND_TRUTH})
    table = graphs_table(rows) if ds.graphs is None else pa.concat_tables([ds.graphs, graphs_table(rows)])
    if ds.report is not None:
        ds.report.warnings.append(f"ground-truth scene graphs: {len(rows)} of {len(ids)} images"
                                  + (f"; {unmatched} graphs name no image of the dataset" if unmatched else ""))
    return RSDataset(ds.name, ds.images, ds.captions, table, ds.report)


def star_patch_graphs(path: Path, ds: RSDataset) -> RSDataset:
    """``ds`` with the ground-truth graphs of its patches cut from STAR's scene graphs (``path``: a STAR split
    folder with object-json/ and relationship/, or several split folders under it); what could not be
    matched is said in the report's warnings."""
    from rsretrieval.data.star import fit_rs_patch_graphs

    path = Path(path)
    folders = [path] if (path / "object-json").is_dir() else sorted(p for p in path.iterdir() if (p / "object-json").is_dir())
    if not folders:
        raise DatasetNotFoundError("STAR annotation folder (object-json/ and relationship/)", path,
                                   "Point datasets[].fit_rs.scene_graphs to a STAR split folder, or to the folder "
                                   "holding STAR's split folders; or unset it.")
    names = [iid.split(":", 1)[1] for iid in ds.images["image_id"].to_pylist()]
    graphs: dict[str, "ImageSceneGraph"] = {}
    for folder in folders:
        found, warnings = fit_rs_patch_graphs(folder, names)
        graphs.update(found)
        if ds.report is not None:
            ds.report.warnings += [f"STAR {folder.name}: {w}" for w in warnings]
    return add_scene_graphs(ds, graphs)
