"""Arrow schemas of the tables that stages exchange (see DESIGN.md, "Data contract").

Every reader returns an :class:`RSDataset` whose ``images`` and ``captions`` tables follow
these schemas exactly, so every later stage (embedding, scenes, graphs, scoring) can rely
on the column names and types.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
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
class ReadReport:
    """What a reader noticed but did not treat as fatal: duplicates, skipped items."""

    source: str
    duplicate_captions: list[DuplicateCaption] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        """Counts for logging (MLflow params/metrics, console)."""
        return {
            "duplicate_caption_texts": len(self.duplicate_captions),
            "duplicate_caption_texts_cross_image": sum(d.cross_image for d in self.duplicate_captions),
            "warnings": len(self.warnings),
        }


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
