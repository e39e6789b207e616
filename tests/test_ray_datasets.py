"""In-memory tables as Ray Datasets: one block per batch (at least one per actor), rows in order,
the same result through the public fallback path."""

from __future__ import annotations

import pyarrow as pa
import pytest

from rsretrieval.pipelines.stages import embed


@pytest.mark.parametrize("rows,batch,actors,blocks", [(10, 3, 2, 4), (10, 100, 3, 3), (2, 1, 4, 2), (0, 8, 2, 1)])
def test_table_to_dataset_blocks_and_order(ray_local, rows: int, batch: int, actors: int, blocks: int,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    table = pa.table({"id": [f"r{i}" for i in range(rows)], "x": list(range(rows))})
    ds = embed.dataset_from_table(table, batch, actors)
    assert ds.num_blocks() == blocks
    assert ds.take_all() == table.to_pylist()

    def moved(*_: object) -> None:
        raise ImportError("Ray internals moved")

    monkeypatch.setattr(embed, "_presliced_dataset", moved)
    public = embed.dataset_from_table(table, batch, actors)
    assert public.take_all() == table.to_pylist()
