"""Arrow schemas of the tables that stages exchange (see DESIGN.md, "Data contract").

Every reader returns an :class:`RSDataset` whose ``images`` and ``captions`` tables follow
these schemas exactly, so every later stage (embedding, scenes, graphs, scoring) can rely
on the column names and types.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

SPLITS = ("train", "val", "test")
VARIANTS = ("original", "fine_grained")

IMAGES_SCHEMA = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),  # "<dataset>:<file name>", unique
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),  # train / val / test
        pa.field("uri", pa.string(), nullable=False),  # absolute path of the image file
        pa.field("scene_label", pa.string(), nullable=True),  # class / scene type when known
    ]
)

CAPTIONS_SCHEMA = pa.schema(
    [
        pa.field("caption_id", pa.string(), nullable=False),  # unique within the dataset
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("variant", pa.string(), nullable=False),  # original / fine_grained
        pa.field("split", pa.string(), nullable=False),
    ]
)

GRAPHS_SCHEMA = pa.schema(
    [
        pa.field("owner_id", pa.string(), nullable=False),  # image_id or caption_id
        pa.field("kind", pa.string(), nullable=False),  # image_graph / text_graph
        pa.field("graph", pa.string(), nullable=False),  # validated JSON
        pa.field("generator", pa.string(), nullable=False),  # model@prompt-version, or "ground_truth"
        pa.field("tokens_in", pa.int64(), nullable=True),
        pa.field("tokens_out", pa.int64(), nullable=True),
    ]
)


def images_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Build an ``images`` table from row dicts (missing ``scene_label`` becomes null)."""
    return pa.Table.from_pylist(
        [{**{"scene_label": None}, **r} for r in rows], schema=IMAGES_SCHEMA
    )


def captions_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Build a ``captions`` table from row dicts."""
    return pa.Table.from_pylist(rows, schema=CAPTIONS_SCHEMA)


def graphs_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Build a ``graphs`` table from row dicts."""
    return pa.Table.from_pylist(
        [{**{"tokens_in": None, "tokens_out": None}, **r} for r in rows], schema=GRAPHS_SCHEMA
    )


@dataclass
class DuplicateCaption:
    """One normalised caption text that occurs more than once."""

    text: str  # normalised text
    caption_ids: list[str]
    image_ids: list[str]  # distinct images it describes

    @property
    def cross_image(self) -> bool:
        """True when the same text describes more than one image (it hurts R@1)."""
        return len(self.image_ids) > 1


@dataclass
class SkippedEntry:
    """One sample, row or shard part a reader left out (web-scale formats keep their good rows)."""

    source: str  # the file: tar shard or table
    entry: str  # where in it: member name / sample key, "row 12 (line 13)", "byte 9216"
    kind: str  # short reason code: no_image, no_caption, bad_image, damaged_shard, status, url, missing_file, ...
    detail: str  # one line for people

    def __str__(self) -> str:
        return f"{self.source}, {self.entry}: {self.detail}"


@dataclass
class ReadReport:
    """What a reader noticed but did not treat as fatal: duplicates, skipped items."""

    source: str
    duplicate_captions: list[DuplicateCaption] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: list[SkippedEntry] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        """Counts for logging (MLflow params/metrics, console)."""
        return {
            "duplicate_caption_texts": len(self.duplicate_captions),
            "duplicate_caption_texts_cross_image": sum(d.cross_image for d in self.duplicate_captions),
            "warnings": len(self.warnings),
            "skipped": len(self.skipped),
        }

    def skipped_counts(self) -> dict[str, int]:
        """Skipped entries per reason code, most frequent first."""
        counts: dict[str, int] = {}
        for s in self.skipped:
            counts[s.kind] = counts.get(s.kind, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def write_skipped(self, folder: str | Path, dataset: str) -> Path:
        """``skipped-<dataset>.csv`` in ``folder`` (the run folder): source, entry, kind, detail per skipped entry."""
        import csv

        path = Path(folder) / f"skipped-{dataset}.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["source", "entry", "kind", "detail"])
            writer.writerows([s.source, s.entry, s.kind, s.detail] for s in self.skipped)
        return path

    def skipped_note(self, dataset: str) -> str | None:
        """The results footnote about skipped entries, or None when nothing was skipped."""
        if not self.skipped:
            return None
        kinds = ", ".join(f"{n} {k}" for k, n in self.skipped_counts().items())
        return (f"{dataset}: {len(self.skipped)} samples/rows left out while reading ({kinds}; "
                f"skipped-{dataset}.csv names the file and entry of each)")


@dataclass
class RSDataset:
    """A dataset in the common tables: what every reader returns."""

    name: str
    images: pa.Table
    captions: pa.Table
    graphs: pa.Table | None = None
    report: ReadReport | None = None

    def split(self, split: str) -> "RSDataset":
        """The subset of one split (images and their captions)."""
        import pyarrow.compute as pc

        images = self.images.filter(pc.equal(self.images["split"], split))
        captions = self.captions.filter(pc.equal(self.captions["split"], split))
        graphs = self.graphs
        if graphs is not None:
            keep = pa.concat_arrays(
                [images["image_id"].combine_chunks(), captions["caption_id"].combine_chunks()]
            )
            graphs = graphs.filter(pc.is_in(graphs["owner_id"], keep))
        return RSDataset(self.name, images, captions, graphs, self.report)

    def fingerprint(self) -> str:
        """Content hash of the tables (ids, uris, texts): the data part of every cache key."""
        h = hashlib.sha256()
        for table in (self.images, self.captions):
            for col in table.column_names:
                h.update(col.encode())
                h.update(json.dumps(table[col].to_pylist(), sort_keys=True).encode())
        return h.hexdigest()[:16]


def normalise_caption(text: str) -> str:
    """Normalised caption text used to find duplicates: lowercase, single spaces, no final period."""
    t = " ".join(text.lower().split())
    return t.rstrip(" .").strip()


def find_duplicate_captions(captions: pa.Table) -> list[DuplicateCaption]:
    """Every normalised caption text that occurs more than once, per variant. Never merges them."""
    groups: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
    for cid, iid, text, variant in zip(
        captions["caption_id"].to_pylist(),
        captions["image_id"].to_pylist(),
        captions["text"].to_pylist(),
        captions["variant"].to_pylist(),
    ):
        ids, imgs = groups.setdefault((variant, normalise_caption(text)), ([], []))
        ids.append(cid)
        if iid not in imgs:
            imgs.append(iid)
    return [
        DuplicateCaption(text=t, caption_ids=ids, image_ids=imgs)
        for (_, t), (ids, imgs) in groups.items()
        if len(ids) > 1
    ]
