"""The audit's image hashes (dHash, pHash) as a Ray Data stage: at NWPU size hashing every image in the
driver takes minutes on one core (about 4 ms per 256 px image); here the workers hash batches and only
the ids and two 64-bit hashes per image come back."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from rsretrieval.analysis.audit import hash_images, hashes_frame, images_to_hash
from rsretrieval.data.schema import RSDataset
from rsretrieval.pipelines.runtime.ray_session import ensure_ray
from rsretrieval.pipelines.stages.embed import dataset_from_table

RAY_MIN_IMAGES = 5_000  # below this a local Ray start costs more than it saves


def image_hashes_ray(datasets: list[RSDataset], batch_size: int = 256, blocks: int | None = None) -> pd.DataFrame:
    """:func:`rsretrieval.analysis.audit.image_hashes`, computed by Ray Data tasks (same rows, same order)."""
    import ray

    table = images_to_hash(datasets)
    if table.num_rows == 0:
        return hashes_frame(hash_images(table))
    ensure_ray()
    table = table.append_column("row", pa.array(range(table.num_rows), pa.int64()))
    n = blocks or max(1, int(ray.available_resources().get("CPU", 1)))
    ds = dataset_from_table(table, batch_size, n).map_batches(hash_images, batch_format="pyarrow", batch_size=batch_size)
    out = pa.concat_tables(ray.get(ds.to_arrow_refs()))
    return hashes_frame(out.take(pc.sort_indices(out["row"])))


def audit_hashes(datasets: list[RSDataset], workers: str = "auto") -> pd.DataFrame | None:
    """Hashes by Ray Data (``workers`` 'ray', or 'auto' from :data:`RAY_MIN_IMAGES` images), or None: the
    audit hashes in this process."""
    n = sum(ds.images.num_rows for ds in datasets)
    if workers == "ray" or (workers == "auto" and n >= RAY_MIN_IMAGES):
        return image_hashes_ray(datasets)
    return None
