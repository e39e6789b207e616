"""Quarantine of undecodable images: a bad file leaves the evaluation with its captions, counted, not fatal.

A corrupt or truncated image (it exists, so the readers' ``verify_image_files`` passes) would otherwise
fail deep inside a Ray stage after minutes of work. :func:`quarantine_images` decodes every image of a
split up front (``datasets[].verify_images: decode``), and returns the dataset without the bad images,
their captions and graphs, plus one quarantine row per bad image. Counts reconcile by construction:
images in = kept + quarantined; captions in = kept + dropped with their image.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from rsretrieval.data.errors import DatasetFormatError, ImageDecodeError
from rsretrieval.data.schema import RSDataset

QUARANTINE_SCHEMA = pa.schema([
    pa.field("dataset", pa.string(), nullable=False),
    pa.field("image_id", pa.string(), nullable=False),
    pa.field("uri", pa.string(), nullable=False),
    pa.field("stage", pa.string(), nullable=False),  # where it failed: "decode" (verify_images) or a stage name
    pa.field("error", pa.string(), nullable=False),
    pa.field("captions_dropped", pa.int64(), nullable=False),
])


def open_rgb(uri: str, stage: str) -> Any:
    """The fully decoded RGB image of a file; any failure is an :class:`ImageDecodeError` naming the file."""
    from PIL import Image

    try:
        with Image.open(uri) as im:
            return im.convert("RGB")  # convert() decodes every pixel: truncation surfaces here, not later
    except Exception as exc:  # PIL raises OSError, UnidentifiedImageError, ValueError, DecompressionBombError
        raise ImageDecodeError(uri, stage, exc) from exc


def decode_error(uri: str) -> str | None:
    """None if the file decodes completely, else a one-line reason."""
    from PIL import Image

    try:
        with Image.open(uri) as im:
            im.load()
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


@dataclass
class QuarantineResult:
    """The cleaned dataset and what left it."""

    dataset: RSDataset
    rows: pa.Table  # QUARANTINE_SCHEMA, one row per quarantined image
    images_in: int
    captions_in: int

    @property
    def captions_dropped(self) -> int:
        return self.captions_in - self.dataset.captions.num_rows

    def write(self, folder: Path) -> Path:
        """``quarantine-<dataset>.csv`` in ``folder`` (the run folder): one row per quarantined image."""
        path = Path(folder) / f"quarantine-{self.dataset.name}.csv"
        self.rows.to_pandas().to_csv(path, index=False)
        return path

    def note(self) -> str | None:
        """The results footnote, or None when nothing was quarantined."""
        n = self.rows.num_rows
        if not n:
            return None
        return (f"{self.dataset.name}: {n} of {self.images_in} images quarantined (file cannot be decoded; "
                f"quarantine-{self.dataset.name}.csv) and their {self.captions_dropped} captions left out")


def _files_key(uris: list[str]) -> str:
    """Digest of every file's (path, size, mtime): a decode check holds while none of them changes."""
    h = hashlib.sha256(b"decode-check-v1\n")
    for u in uris:
        try:
            st = os.stat(u)
            h.update(f"{u}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{u}\tmissing\n".encode())
    return h.hexdigest()[:24]


def decode_errors(uris: list[str], threads: int | None = None, cache_dir: Path | None = None) -> list[str | None]:
    """:func:`decode_error` of every file (a thread pool: PIL releases the GIL while decoding). With
    ``cache_dir`` the answers are kept under ``<cache_dir>/decode_checks/`` for the same files (path,
    size, mtime), so a rerun does not decode the corpus again."""
    cache = Path(cache_dir) / "decode_checks" / f"{_files_key(uris)}.json" if cache_dir else None
    if cache is not None and cache.is_file():
        bad = json.loads(cache.read_text())
        return [bad.get(u) for u in uris]
    with ThreadPoolExecutor(threads or min(8, os.cpu_count() or 1)) as pool:
        errors = list(pool.map(decode_error, uris))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps({u: e for u, e in zip(uris, errors) if e is not None}))
        os.replace(tmp, cache)
    return errors


def quarantine_images(ds: RSDataset, threads: int | None = None, cache_dir: Path | None = None) -> QuarantineResult:
    """Decode every image of ``ds`` and drop the images that fail, with their captions and graphs
    (decode results cached under ``cache_dir`` when given, see :func:`decode_errors`)."""
    ids, uris = ds.images["image_id"].to_pylist(), ds.images["uri"].to_pylist()
    errors = decode_errors(uris, threads, cache_dir)
    bad = {i: (u, e) for i, u, e in zip(ids, uris, errors) if e is not None}
    if bad and len(bad) == len(ids):
        uri, err = next(iter(bad.values()))
        raise DatasetFormatError(uri, None, f"none of the {len(ids)} images of dataset '{ds.name}' can be decoded "
                                 f"({err}); is image_root the right folder?")
    per_image = Counter(ds.captions["image_id"].to_pylist())
    rows = [{"dataset": ds.name, "image_id": i, "uri": u, "stage": "decode", "error": e,
             "captions_dropped": per_image[i]} for i, (u, e) in bad.items()]
    out = ds
    if bad:
        gone = pa.array(sorted(bad), pa.string())
        images = ds.images.filter(pc.invert(pc.is_in(ds.images["image_id"], gone)))
        captions = ds.captions.filter(pc.invert(pc.is_in(ds.captions["image_id"], gone)))
        graphs = ds.graphs
        if graphs is not None:  # the graphs of the dropped images and of their captions go too
            dropped_caps = ds.captions.filter(pc.is_in(ds.captions["image_id"], gone))["caption_id"]
            owners = pa.concat_arrays([gone, dropped_caps.combine_chunks()])
            graphs = graphs.filter(pc.invert(pc.is_in(graphs["owner_id"], owners)))
        out = RSDataset(ds.name, images, captions, graphs, ds.report)
    result = QuarantineResult(out, pa.Table.from_pylist(rows, schema=QUARANTINE_SCHEMA),
                              ds.images.num_rows, ds.captions.num_rows)
    # the contract of this step: nothing leaves silently
    if (result.images_in != out.images.num_rows + result.rows.num_rows
            or result.captions_dropped != sum(r["captions_dropped"] for r in rows)):
        raise RuntimeError(f"{ds.name}: quarantine counts do not reconcile ({result.images_in} images in, "
                           f"{out.images.num_rows} kept, {result.rows.num_rows} quarantined)")
    return result
