"""Leakage and duplicate audit: perceptual image hashes and normalised caption texts, within and across
splits and datasets.

RS benchmarks leak: RSITMD reuses RSICD images, UCM captions repeat across images, and a checkpoint
trained on "RS data" may have seen the test split. The audit finds

* **image duplicates**: pairs whose dHash *and* pHash Hamming distances are within thresholds (a
  re-encoded, resized or slightly recoloured copy stays within a few bits; a different scene differs in
  about half of the 64 bits), grouped with union-find;
* **caption duplicates**: identical normalised texts (``normalise_caption``);
* **leaks**: items of the evaluated split that match an item of a training split (``train_splits``) of
  the same dataset or of another audited dataset. ``leaks.csv`` is what ``eval.exclude_leaked`` reads.

Hashes are plain numpy/PIL/scipy (no imagehash): dHash compares neighbouring pixels of a 9 x 8
greyscale thumbnail; pHash thresholds the low 8 x 8 DCT coefficients of a 32 x 32 thumbnail at their
median.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from rsretrieval.data.schema import RSDataset, normalise_caption


class AuditOptions(BaseModel):
    """Thresholds and scope of the audit."""

    model_config = ConfigDict(extra="forbid")

    eval_split: str = Field("test", description="Split whose items are checked for leaks (the benchmark's split)")
    train_splits: list[str] = Field(default_factory=lambda: ["train", "val"],
                                    description="Splits a model may have trained on: matches there are leaks")
    dhash_max: int = Field(8, ge=0, le=64, description="Largest dHash Hamming distance (of 64 bits) of a duplicate")
    phash_max: int = Field(10, ge=0, le=64, description="Largest pHash Hamming distance (of 64 bits) of a duplicate")
    block: int = Field(2048, ge=1, description="Images compared per block (memory: block x images)")


# --- hashes -------------------------------------------------------------------------------------------

def _grey(image: "object", size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    im = image if isinstance(image, Image.Image) else Image.open(image)
    im.draft("L", (size[0] * 4, size[1] * 4))  # JPEG: decode at reduced size (much faster for big files)
    return np.asarray(im.convert("L").resize(size, Image.Resampling.LANCZOS), dtype=np.float64)


def _pack(bits: np.ndarray) -> int:
    return int.from_bytes(np.packbits(bits.astype(np.uint8).ravel()).tobytes(), "big")


def dhash(image: "object", size: int = 8) -> int:
    """64-bit difference hash: is each pixel brighter than its right neighbour (size+1 x size thumbnail)."""
    g = _grey(image, (size + 1, size))
    return _pack(g[:, 1:] > g[:, :-1])


def phash(image: "object", size: int = 8, factor: int = 4) -> int:
    """64-bit DCT hash: low-frequency DCT coefficients of a (size*factor)^2 thumbnail above their median."""
    from scipy.fft import dctn

    g = _grey(image, (size * factor, size * factor))
    low = dctn(g, norm="ortho")[:size, :size]
    return _pack(low > np.median(low.ravel()[1:]))  # the DC term would dominate the median


def hamming_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise Hamming distances of 64-bit hashes (uint64). Shapes: (n,), (m,) -> (n, m) int."""
    bits = lambda h: np.unpackbits(np.asarray(h, dtype=">u8").view(np.uint8).reshape(-1, 8), axis=1)  # noqa: E731
    sa, sb = bits(a).astype(np.float32) * 2 - 1, bits(b).astype(np.float32) * 2 - 1
    return np.rint((64 - sa @ sb.T) / 2).astype(np.int64)  # +-1 vectors: dot = agreements - disagreements


HASH_COLUMNS = ["image_id", "dataset", "split", "dhash", "phash"]


def images_to_hash(datasets: list[RSDataset]) -> pa.Table:
    """image_id, dataset, split, uri of every image of the datasets, in order."""
    parts = [pa.table({"image_id": ds.images["image_id"], "dataset": pa.array([ds.name] * ds.images.num_rows, pa.string()),
                       "split": ds.images["split"], "uri": ds.images["uri"]}) for ds in datasets]
    return pa.concat_tables(parts) if parts else pa.table({c: pa.array([], pa.string()) for c in ("image_id", "dataset", "split", "uri")})


def hash_images(table: pa.Table) -> pa.Table:
    """``table`` (image_id, dataset, split, uri) without the uri, plus dhash and phash (uint64) of each file:
    what the serial audit does at once and each Ray Data worker per batch."""
    from PIL import Image

    dh, ph = [], []
    for uri in table["uri"].to_pylist():
        with Image.open(uri) as im:
            im.load()
            dh.append(dhash(im))
            ph.append(phash(im))
    return table.drop_columns(["uri"]).append_column("dhash", pa.array(dh, pa.uint64())).append_column(
        "phash", pa.array(ph, pa.uint64()))


def hashes_frame(table: pa.Table) -> pd.DataFrame:
    return table.select(HASH_COLUMNS).to_pandas().astype({"dhash": "uint64", "phash": "uint64"})


def image_hashes(datasets: list[RSDataset]) -> pd.DataFrame:
    """One row per image of every dataset: image_id, dataset, split, dhash, phash (uint64), hashed in this
    process (``rsretrieval.pipelines.stages.image_hashes`` spreads the same work over Ray Data)."""
    return hashes_frame(hash_images(images_to_hash(datasets)))


# --- grouping -------------------------------------------------------------------------------------------

def near_duplicate_pairs(hashes: pd.DataFrame, opts: AuditOptions) -> pd.DataFrame:
    """Every pair (i < j) of rows within both thresholds: columns i, j, dhash_dist, phash_dist."""
    d, p = hashes["dhash"].to_numpy(np.uint64), hashes["phash"].to_numpy(np.uint64)
    out = []
    for start in range(0, len(d), opts.block):
        dd = hamming_matrix(d[start:start + opts.block], d)
        pp = hamming_matrix(p[start:start + opts.block], p)
        i, j = np.nonzero((dd <= opts.dhash_max) & (pp <= opts.phash_max))
        keep = start + i < j
        out.append(pd.DataFrame({"i": start + i[keep], "j": j[keep], "dhash_dist": dd[i[keep], j[keep]],
                                 "phash_dist": pp[i[keep], j[keep]]}))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=["i", "j", "dhash_dist", "phash_dist"])


def _union_find(n: int, pairs: pd.DataFrame) -> np.ndarray:
    parent = np.arange(n)

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j in zip(pairs["i"].tolist(), pairs["j"].tolist()):
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return np.array([root(x) for x in range(n)])


def image_groups(hashes: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """Images that belong to a duplicate group (>= 2 members), with the group id (its first member)."""
    roots = _union_find(len(hashes), pairs)
    df = hashes[["image_id", "dataset", "split"]].assign(group=hashes["image_id"].to_numpy()[roots])
    sizes = df["group"].map(df["group"].value_counts())
    return df[sizes > 1].sort_values(["group", "image_id"]).reset_index(drop=True)


def caption_table(datasets: list[RSDataset]) -> pd.DataFrame:
    """Every caption with its normalised text and a short hash of it (the caption duplicate key)."""
    frames = []
    for ds in datasets:
        c = ds.captions.select(["caption_id", "image_id", "text", "variant", "split"]).to_pandas()
        c.insert(0, "dataset", ds.name)
        frames.append(c)
    df = pd.concat(frames, ignore_index=True)
    df["norm"] = df["text"].map(normalise_caption)
    df["text_hash"] = df["norm"].map(lambda t: hashlib.sha1(t.encode()).hexdigest()[:16])
    return df


def caption_groups(captions: pd.DataFrame) -> pd.DataFrame:
    """Captions whose normalised text occurs more than once (anywhere), with the number of distinct images."""
    sizes = captions["text_hash"].map(captions["text_hash"].value_counts())
    dup = captions[sizes > 1].copy()
    dup["images"] = dup["text_hash"].map(dup.groupby("text_hash")["image_id"].nunique())
    return dup.drop(columns="norm").sort_values(["text_hash", "dataset", "caption_id"]).reset_index(drop=True)


# --- leaks -------------------------------------------------------------------------------------------

def find_leaks(hashes: pd.DataFrame, pairs: pd.DataFrame, captions: pd.DataFrame, opts: AuditOptions) -> pd.DataFrame:
    """Eval-split items matching a training-split item of any audited dataset: one row per (item, match)."""
    rows = []
    both = pd.concat([pairs, pairs.rename(columns={"i": "j", "j": "i"})], ignore_index=True)
    h = hashes.reset_index(drop=True)
    for i, j, dd, pp in both[["i", "j", "dhash_dist", "phash_dist"]].itertuples(index=False):
        a, b = h.iloc[i], h.iloc[j]
        if a["split"] == opts.eval_split and b["split"] in opts.train_splits:
            rows.append({"kind": "image", "item_id": a["image_id"], "dataset": a["dataset"], "split": a["split"],
                         "matched_id": b["image_id"], "matched_dataset": b["dataset"], "matched_split": b["split"],
                         "scope": "cross-split" if a["dataset"] == b["dataset"] else "cross-dataset",
                         "detail": f"dhash {dd}, phash {pp}"})
    train = captions[captions["split"].isin(opts.train_splits)]
    first = train.drop_duplicates(["text_hash", "dataset"])
    ev = captions[captions["split"] == opts.eval_split]
    for r in ev.merge(first, on="text_hash", suffixes=("", "_m")).itertuples(index=False):
        rows.append({"kind": "caption", "item_id": r.caption_id, "dataset": r.dataset, "split": r.split,
                     "matched_id": r.caption_id_m, "matched_dataset": r.dataset_m, "matched_split": r.split_m,
                     "scope": "cross-split" if r.dataset == r.dataset_m else "cross-dataset", "detail": r.norm})
    cols = ["kind", "item_id", "dataset", "split", "matched_id", "matched_dataset", "matched_split", "scope", "detail"]
    return pd.DataFrame(rows, columns=cols)


@dataclass
class AuditResult:
    hashes: pd.DataFrame
    image_groups: pd.DataFrame
    caption_groups: pd.DataFrame
    leaks: pd.DataFrame
    summary: pd.DataFrame


def summarise(datasets: list[RSDataset], hashes: pd.DataFrame, groups: pd.DataFrame, captions: pd.DataFrame,
              leaks: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset x split: sizes, duplicates within the split, leaks into it."""
    rows = []
    for ds in datasets:
        for split in sorted(set(ds.images["split"].to_pylist())):
            h = hashes[(hashes["dataset"] == ds.name) & (hashes["split"] == split)]
            g = groups[(groups["dataset"] == ds.name) & (groups["split"] == split)]
            within = g[g["group"].map(g["group"].value_counts()) > 1]  # groups with 2+ members in this split
            c = captions[(captions["dataset"] == ds.name) & (captions["split"] == split)]
            counts = c.groupby("text_hash")["image_id"].agg(["size", "nunique"])
            lk = leaks[(leaks["dataset"] == ds.name) & (leaks["split"] == split)]
            other = set(groups.loc[groups["dataset"] != ds.name, "group"])  # groups holding another dataset's image
            rows.append({
                "dataset": ds.name, "split": split, "images": len(h), "captions": len(c),
                "distinct_texts": int(c["text_hash"].nunique()),
                "image_dup_groups": int(within["group"].nunique()), "images_in_dup_groups": len(within),
                "images_also_in_other_datasets": int(g["group"].isin(other).sum()),
                "dup_caption_texts": int((counts["size"] > 1).sum()),
                "cross_image_caption_texts": int((counts["nunique"] > 1).sum()),
                "leaked_images_cross_split": int(lk[(lk["kind"] == "image") & (lk["scope"] == "cross-split")]["item_id"].nunique()),
                "leaked_images_cross_dataset": int(lk[(lk["kind"] == "image") & (lk["scope"] == "cross-dataset")]["item_id"].nunique()),
                "leaked_captions_cross_split": int(lk[(lk["kind"] == "caption") & (lk["scope"] == "cross-split")]["item_id"].nunique()),
                "leaked_captions_cross_dataset": int(lk[(lk["kind"] == "caption") & (lk["scope"] == "cross-dataset")]["item_id"].nunique()),
            })
    return pd.DataFrame(rows)


def run_audit(datasets: list[RSDataset], opts: AuditOptions, hashes: pd.DataFrame | None = None) -> AuditResult:
    """Hash, group and cross-check every image and caption of the datasets (all splits); ``hashes``:
    :func:`image_hashes` computed elsewhere (Ray Data), else hashed here."""
    hashes = image_hashes(datasets) if hashes is None else hashes
    pairs = near_duplicate_pairs(hashes, opts)
    groups = image_groups(hashes, pairs)
    captions = caption_table(datasets)
    leaks = find_leaks(hashes, pairs, captions, opts)
    return AuditResult(hashes, groups, caption_groups(captions), leaks,
                       summarise(datasets, hashes, groups, captions, leaks))


def write_audit(res: AuditResult, out_dir: Path, opts: AuditOptions) -> list[Path]:
    """image_hashes.parquet, image_duplicates.csv, caption_duplicates.csv, leaks.csv, summary.csv, summary.md."""
    from rsretrieval.evaluation.tables import markdown_table

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    hashes = res.hashes.assign(dhash=res.hashes["dhash"].map(lambda x: f"{int(x):016x}"),
                               phash=res.hashes["phash"].map(lambda x: f"{int(x):016x}"))
    paths = [out_dir / n for n in ("image_hashes.parquet", "image_duplicates.csv", "caption_duplicates.csv",
                                   "leaks.csv", "summary.csv", "summary.md")]
    hashes.to_parquet(paths[0], index=False)
    res.image_groups.to_csv(paths[1], index=False)
    res.caption_groups.to_csv(paths[2], index=False)
    res.leaks.to_csv(paths[3], index=False)
    res.summary.to_csv(paths[4], index=False)
    md = ["# Duplicate and leakage audit", "", *markdown_table(res.summary), "",
          f"Images are duplicates when dHash <= {opts.dhash_max} and pHash <= {opts.phash_max} bits apart (of 64). "
          "Captions are duplicates when their normalised texts are equal. A leak is an item of the "
          f"'{opts.eval_split}' split that matches an item of a {'/'.join(opts.train_splits)} split, of the same "
          "dataset (cross-split) or another audited dataset (cross-dataset). image_dup_groups counts groups with "
          "two or more members inside the split; cross-split groups appear in leaks.csv. "
          "`--set eval.exclude_leaked=<this folder>/leaks.csv` drops the leaked items from a benchmark run.", ""]
    paths[5].write_text("\n".join(md), encoding="utf-8")
    return paths


def drop_leaked(ds: RSDataset, leaks_csv: Path) -> tuple[RSDataset, int, int]:
    """``ds`` without the images and captions that ``leaks.csv`` lists for it (a leaked image takes its
    captions along); returns (dataset, images removed, captions removed)."""
    import pyarrow.compute as pc

    leaks = pd.read_csv(leaks_csv)
    mine = leaks[leaks["dataset"] == ds.name]
    bad_images = set(mine.loc[mine["kind"] == "image", "item_id"])
    bad_caps = set(mine.loc[mine["kind"] == "caption", "item_id"])
    keep_img = pc.invert(pc.is_in(ds.images["image_id"], pa_array(bad_images)))
    images = ds.images.filter(keep_img)
    keep_cap = pc.and_(pc.is_in(ds.captions["image_id"], images["image_id"]),
                       pc.invert(pc.is_in(ds.captions["caption_id"], pa_array(bad_caps))))
    captions = ds.captions.filter(keep_cap)
    out = RSDataset(ds.name, images, captions, ds.graphs, ds.report)
    return out, ds.images.num_rows - images.num_rows, ds.captions.num_rows - captions.num_rows


def pa_array(values: set[str]) -> "object":
    import pyarrow as pa

    return pa.array(sorted(values), pa.string())
