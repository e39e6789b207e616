"""Reader of metadata tables: Parquet, CSV or TSV with one row per caption (RS5M's metadata, img2dataset's
output tables ``url, key, caption, status, error_message, ...``, or your own table with a path column).

``annotations`` is one ``.parquet`` / ``.csv`` / ``.tsv`` file, or a folder of them (top level, name order:
img2dataset writes one ``00000.parquet`` per shard beside the shard's image folder ``00000/``). Columns come
from :class:`~rsretrieval.config.datasets.MetadataTableOptions`: the image path (``image_column``, or
``image_template`` over the row, e.g. ``{key:.5}/{key}.jpg``) relative to ``image_root`` (default: the
table's folder) or absolute; the caption; optional image id and split columns. Rows naming one image id
are captions of that image. Tables are streamed (Parquet row batches, CSV rows), never read whole.

Bad rows never cost good ones. A row whose img2dataset ``status`` is not ``success``, whose image is an
http(s) URL (nothing is downloaded: run img2dataset first), whose image file is missing or unreadable,
whose caption is empty, or whose split is unknown is left out; a table that cannot be read any further
keeps the rows read before. Each is a :class:`~rsretrieval.data.schema.SkippedEntry` (table, row number,
reason) in ``RSDataset.report.skipped``. If every row is a URL the read stops with an error saying so.
A missing column is an error (it is a config mistake, not a bad row).
"""

from __future__ import annotations

import csv
import logging
import os
import string
from pathlib import Path
from typing import Any, Iterator

from rsretrieval.config.datasets import MetadataTableOptions
from rsretrieval.data._common import abs_uri, build_dataset, check_split, require_dir, require_file
from rsretrieval.data.errors import DatasetFormatError, DatasetNotFoundError
from rsretrieval.data.schema import RSDataset, SkippedEntry

log = logging.getLogger(__name__)

TABLE_SUFFIXES = (".parquet", ".csv", ".tsv")
BATCH_ROWS = 65_536
URL_PREFIXES = ("http://", "https://")
HINT = ("Point `annotations` to a Parquet / CSV / TSV table with an image path column and a caption column "
        "(one row per caption), or to a folder of such tables (img2dataset's output folder).")


def find_tables(annotations: Path, image_root: Path | None = None) -> list[Path]:
    """The table files ``annotations`` names (a file or a folder of them); missing ones raise saying what to do."""
    path = Path(annotations).expanduser()
    if path.is_dir():
        tables = sorted(p for p in path.iterdir() if p.suffix.lower() in TABLE_SUFFIXES and p.is_file())
        if not tables:
            raise DatasetNotFoundError("metadata tables (*.parquet, *.csv, *.tsv)", path, HINT)
    else:
        tables = [require_file(path, "metadata table", HINT)]
        if path.suffix.lower() not in TABLE_SUFFIXES:
            raise DatasetFormatError(path, None, f"unknown table type {path.suffix!r}: use .parquet, .csv or .tsv")
    if image_root is not None:
        require_dir(image_root, "Image folder", "Put the images there; relative image paths of the table are read "
                    "from it (leave image_root unset to read them from the table's folder).")
    return tables


def required_columns(options: MetadataTableOptions) -> list[str]:
    """Columns a table must have under ``options`` (the template's fields, caption, id and split columns)."""
    if options.image_template is not None:
        image = [f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(options.image_template) if f]
    else:
        image = [options.image_column]
    extra = [c for c in (options.id_column, options.split_column) if c is not None]
    return list(dict.fromkeys(image + [options.caption_column] + extra))


def _check_header(table: Path, names: list[str], required: list[str]) -> None:
    missing = [c for c in required if c not in names]
    if missing:
        raise DatasetFormatError(table, "header", f"missing column(s) {missing}; found {names}. Set "
                                 "datasets[].metadata.image_column / image_template / caption_column to its columns")


def iter_rows(table: Path, required: list[str], optional: list[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(entry name, row) of a table, streamed: Parquet in row batches of the wanted columns, CSV/TSV row by row."""
    if table.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(table)
        names = pf.schema_arrow.names
        _check_header(table, names, required)
        n = 0
        for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=[c for c in required + optional if c in names]):
            for row in batch.to_pylist():
                n += 1
                yield f"row {n}", row
        return
    with open(table, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f, delimiter="\t" if table.suffix.lower() == ".tsv" else ",")
        _check_header(table, list(reader.fieldnames or []), required)
        for i, row in enumerate(reader, 1):
            yield f"row {i} (line {reader.line_num})", row


class _Rows:
    """The image and caption rows being collected, and what was left out."""

    def __init__(self, dataset: str, options: MetadataTableOptions, verify_images: bool) -> None:
        self.dataset, self.options, self.verify = dataset, options, verify_images
        self.images: dict[str, dict[str, Any]] = {}
        self.first: dict[str, str] = {}
        self.captions: list[dict[str, Any]] = []
        self.skipped: list[SkippedEntry] = []
        self.urls = 0

    def skip(self, table: Path, entry: str, kind: str, detail: str) -> None:
        self.skipped.append(SkippedEntry(str(table), entry, kind, detail))

    def image_path(self, table: Path, entry: str, row: dict[str, Any]) -> Any:
        template = self.options.image_template
        if template is None:
            return row.get(self.options.image_column)
        try:
            return template.format(**{k: "" if v is None else str(v) for k, v in row.items()})
        except (KeyError, IndexError, ValueError) as exc:
            raise DatasetFormatError(table, entry, f"metadata.image_template {template!r} cannot be filled from "
                                     f"this row ({type(exc).__name__}: {exc})") from None

    def add(self, table: Path, root: Path, entry: str, row: dict[str, Any], has_status: bool) -> None:
        """Keep one row, or record why it is left out."""
        o = self.options
        status = row.get(o.status_column) if has_status and o.status_column else "success"
        if status != "success":
            msg = row.get("error_message")
            self.skip(table, entry, "status", f"img2dataset status {status!r}" + (f" ({msg})" if msg else ""))
            return
        image = self.image_path(table, entry, row)
        if not isinstance(image, str) or not image.strip():
            self.skip(table, entry, "no_image", f"no image path (column {o.image_template or o.image_column!r})")
            return
        image = image.strip()
        if image.lower().startswith(URL_PREFIXES):
            self.urls += 1
            self.skip(table, entry, "url", f"image {image[:120]!r} is a URL: images are not downloaded (run "
                      "img2dataset first and read its output tables and files)")
            return
        caption = row.get(o.caption_column)
        if not isinstance(caption, str) or not caption.strip():
            self.skip(table, entry, "empty_caption", f"empty or missing caption (column {o.caption_column!r})")
            return
        raw_split = row.get(o.split_column) if o.split_column else None
        try:
            split = check_split(raw_split if raw_split not in (None, "") else o.split, table, entry)
        except DatasetFormatError as exc:
            self.skip(table, entry, "bad_split", exc.problem)
            return
        ident = row.get(o.id_column) if o.id_column else image
        if ident is None or str(ident).strip() == "":
            self.skip(table, entry, "no_id", f"empty image id (column {o.id_column!r})")
            return
        image_id, uri = f"{self.dataset}:{str(ident).strip()}", abs_uri(root, image)
        known = self.images.get(image_id)
        if known is None:
            if self.verify and not (os.path.isfile(uri) and os.access(uri, os.R_OK)):
                self.skip(table, entry, "missing_file", f"image file {uri} is missing or unreadable")
                return
            known = self.images[image_id] = {"image_id": image_id, "dataset": self.dataset, "split": split,
                                             "uri": uri, "scene_label": None, "n": 0}
            self.first[image_id] = f"{table.name} {entry}"
        elif known["split"] != split or known["uri"] != uri:
            self.skip(table, entry, "conflict", f"image {image_id!r} given with split {known['split']!r} and file "
                      f"{known['uri']} at {self.first[image_id]}, here {split!r} and {uri}")
            return
        self.captions.append({"caption_id": f"{image_id}#{known['n']}", "image_id": image_id,
                              "text": caption.strip(), "variant": "original", "split": split})
        known["n"] += 1


def read_metadata_table(annotations: Path, image_root: Path | None = None, dataset: str = "metadata",
                        options: MetadataTableOptions | None = None, verify_images: bool = True) -> RSDataset:
    """Read one metadata table or a folder of them into the common tables, leaving out (and counting) bad rows.

    ``verify_images`` also leaves out rows whose image file is missing or unreadable.
    """
    import pyarrow as pa

    options = options or MetadataTableOptions()
    tables = find_tables(annotations, image_root)
    required = required_columns(options)
    optional = [c for c in (options.status_column, "error_message") if c]
    rows = _Rows(dataset, options, verify_images)
    seen = 0
    for table in tables:
        root = Path(image_root).expanduser() if image_root is not None else table.parent
        entry = "the header"
        try:
            for entry, row in iter_rows(table, required, optional):
                seen += 1
                rows.add(table, root, entry, row, options.status_column is not None and options.status_column in row)
        except (pa.ArrowException, OSError, csv.Error, UnicodeDecodeError) as exc:
            rows.skip(table, f"after {entry}", "damaged_table", f"table cannot be read any further ({type(exc).__name__}: "
                      f"{exc}); the rows before are kept")
    if not rows.captions:
        where = Path(annotations).expanduser()
        if rows.urls and rows.urls == sum(s.kind != "status" for s in rows.skipped):  # status rows failed anyway
            raise DatasetFormatError(where, None, f"all {rows.urls} usable rows name http(s) URLs in column "
                                     f"{options.image_column!r}; images are not downloaded. Run img2dataset "
                                     "(output_format files) on the table first, then point `annotations` at its output "
                                     "folder with metadata.image_template: '{key:.5}/{key}.jpg'")
        first = "; ".join(str(s) for s in rows.skipped[:3]) or "the tables hold no rows"
        raise DatasetFormatError(where, None, f"no usable rows in {len(tables)} table(s), {seen} rows read ({first})")
    image_rows = [{k: v for k, v in r.items() if k != "n"} for r in rows.images.values()]
    ds = build_dataset(dataset, image_rows, rows.captions, Path(annotations))
    report = ds.report
    assert report is not None
    report.skipped = rows.skipped
    if rows.skipped:
        log.warning("%s: %d rows left out (%s); first: %s", dataset, len(rows.skipped),
                    ", ".join(f"{n} {k}" for k, n in report.skipped_counts().items()), rows.skipped[0])
    return ds
