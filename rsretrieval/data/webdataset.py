"""Reader of webdataset tar shards: RS5M, and img2dataset's ``output_format: webdataset``.

A sample is the consecutive tar members that share a key (the member path up to the first dot of its
base name): ``<key>.jpg`` (or .jpeg / .png / .webp / .tif / .tiff / .bmp) + ``<key>.txt`` (the caption)
[+ ``<key>.json``, metadata]. ``annotations`` is a folder (every ``*.tar`` / ``*.tar.gz`` / ``*.tgz`` under
it, in path order), one shard, or a pattern with braces and wildcards (``/data/rs5m/{00000..00099}.tar``,
``/data/rs5m/{pub11,rs3}/*.tar``); a shard named by a pattern but missing is an error.

Images are extracted once, streaming one member at a time (``tarfile`` mode ``r|*``: a shard is never held
in memory), into ``<cache_dir>/webdataset/<shard>-<key>/``, where the key hashes the shard's resolved path,
size and modification time. The folder is filled under a temporary name and renamed into place after its
``manifest.json`` (kept samples with their text members, and the problems met); a rerun reads only the
manifests. The embedding stages then read the extracted files by ``uri`` like any other dataset's.

Bad input never costs good samples. A sample without an image, without a caption, with an empty or
non-UTF-8 caption, or whose image member is not an image, is left out; a truncated or corrupt shard
keeps every sample read before the damage; a shard that is not a tar archive at all is left out whole.
Each is a :class:`~rsretrieval.data.schema.SkippedEntry` (shard path, member name or byte offset, reason)
in ``RSDataset.report.skipped``; a benchmark run writes them to ``skipped-<dataset>.csv`` with a footnote.
Shard discovery and extraction live in :mod:`rsretrieval.data.tar_shards`.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

from rsretrieval.config.datasets import WebDatasetOptions
from rsretrieval.data._common import build_dataset, check_split
from rsretrieval.data.errors import DatasetFormatError
from rsretrieval.data.schema import RSDataset, SkippedEntry
from rsretrieval.data.tar_shards import find_shards, shard_cache_dir, shard_label, shard_manifest

log = logging.getLogger(__name__)

__all__ = ["find_shards", "read_webdataset", "sample_captions"]


def sample_captions(sample: dict[str, Any], options: WebDatasetOptions) -> tuple[list[str], str, str] | str:
    """(captions, split, caption member) of a kept sample, or the reason it cannot be used ("kind: detail")."""
    texts, key = sample["texts"], sample["key"]
    meta: Any = None
    if options.caption_field is not None or options.split_field is not None:
        if texts.get("json") is not None:
            try:
                meta = json.loads(texts["json"])
            except json.JSONDecodeError as exc:
                if options.caption_field is not None:
                    return f"bad_json: {key}.json is not valid JSON ({exc.msg}, line {exc.lineno})"
    if options.caption_field is None:
        member = f"{key}.txt"
        if "txt" not in texts:
            return f"no_caption: sample {key!r} has no .txt caption member"
        raw: Any = texts["txt"]
    else:
        member = f"{key}.json"
        if not isinstance(meta, dict) or options.caption_field not in meta:
            return f"no_caption: no field {options.caption_field!r} in {member} (webdataset.caption_field)"
        raw = meta[options.caption_field]
    if raw is None:
        return f"bad_caption: {member} is not valid UTF-8"
    values = raw if isinstance(raw, list) else [raw]
    if not all(isinstance(v, str) for v in values):
        return f"bad_caption: caption in {member} must be a string or a list of strings, got {raw!r:.80}"
    captions = [v.strip() for v in values if v.strip()]
    if not captions:
        return f"empty_caption: empty caption in {member}"
    split = options.split
    if options.split_field is not None and isinstance(meta, dict) and meta.get(options.split_field) is not None:
        split = meta[options.split_field]
    return captions, split, member


def _manifests(shards: list[Path], folders: list[Path], options: WebDatasetOptions,
               check_files: bool) -> Iterator[dict[str, Any]]:
    """The shards' manifests in order, ``workers`` shards extracted at a time (a few manifests held at once)."""
    workers = max(1, min(options.workers or min(8, os.cpu_count() or 1), len(shards)))
    with ThreadPoolExecutor(workers) as pool:
        for start in range(0, len(shards), 2 * workers):
            chunk = slice(start, start + 2 * workers)
            yield from pool.map(shard_manifest, shards[chunk], folders[chunk], [check_files] * len(shards[chunk]))


def read_webdataset(annotations: Path | str, cache_dir: Path, dataset: str = "webdataset",
                    options: WebDatasetOptions | None = None, verify_images: bool = True) -> RSDataset:
    """Read webdataset shards into the common tables, extracting their images under ``cache_dir`` on first use.

    ``verify_images`` checks that cached extracted images are still there (re-extracting a shard otherwise).
    """
    options = options or WebDatasetOptions()
    check_split(options.split, Path(str(annotations)), "webdataset.split")
    shards, base = find_shards(annotations)
    labels = [shard_label(s, base) for s in shards]
    folders = [shard_cache_dir(s, label, cache_dir) for s, label in zip(shards, labels)]
    image_rows: list[dict[str, Any]] = []
    caption_rows: list[dict[str, Any]] = []
    skipped: list[SkippedEntry] = []
    manifests = _manifests(shards, folders, options, verify_images)
    for shard, label, folder, manifest in zip(shards, labels, folders, manifests):
        skipped += [SkippedEntry(str(shard), p["entry"], p["kind"], p["detail"]) for p in manifest["problems"]]
        for sample in manifest["samples"]:
            got = sample_captions(sample, options)
            if isinstance(got, str):
                kind, _, detail = got.partition(": ")
                cut = " (the sample was cut off by the damage to the shard)" if sample["cut"] else ""
                skipped.append(SkippedEntry(str(shard), sample["member"], kind, detail + cut))
                continue
            captions, split, member = got
            try:
                split = check_split(split, shard, member)
            except DatasetFormatError as exc:
                skipped.append(SkippedEntry(str(shard), member, "bad_split", exc.problem))
                continue
            image_id = f"{dataset}:{label}/{sample['key']}"
            image_rows.append({"image_id": image_id, "dataset": dataset, "split": split,
                               "uri": os.path.abspath(folder / sample["image"]), "scene_label": None})
            caption_rows += [{"caption_id": f"{image_id}#{k}", "image_id": image_id, "text": text,
                              "variant": "original", "split": split} for k, text in enumerate(captions)]
    if not image_rows:
        first = "; ".join(str(s) for s in skipped[:3]) or "the shards hold no samples"
        raise DatasetFormatError(annotations, None, f"no usable samples in {len(shards)} shards ({first})")
    ds = build_dataset(dataset, image_rows, caption_rows, Path(str(annotations)))
    report = ds.report
    assert report is not None
    report.skipped = skipped
    if skipped:
        log.warning("%s: %d samples/shard parts left out (%s); first: %s", dataset, len(skipped),
                    ", ".join(f"{n} {k}" for k, n in report.skipped_counts().items()), skipped[0])
    return ds
