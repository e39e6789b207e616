"""Tables a run keeps are memory-mapped (pipelines/runtime/arrow_spill.py): equal to the originals,
zero-copy over a file, and nothing left on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa

from rsretrieval.pipelines.runtime.arrow_spill import ArrowSpill


def test_mapped_tables_equal_the_originals_and_live_outside_the_heap(tmp_path: Path) -> None:
    table = pa.table({"id": [f"img{i}" for i in range(200_000)], "n": list(range(200_000)),
                      "nodes": [[f"car{i % 7}"] * (i % 3) for i in range(200_000)]})
    before = pa.total_allocated_bytes()
    with ArrowSpill(tmp_path) as spill:
        mapped = spill.map(table, "graphs: test/1")
        assert mapped.equals(table) and mapped.schema == table.schema
        assert pa.total_allocated_bytes() - before < table.nbytes / 10  # zero-copy: not in Arrow's heap pool
        assert spill.bytes >= table.nbytes // 2
        if os.name == "posix":  # unlinked once mapped: nothing to clean up even if the run dies
            assert list(spill.dir.iterdir()) == []
        assert mapped.take([5, 199_999]).to_pylist() == table.take([5, 199_999]).to_pylist()
        assert spill.map(table.slice(0, 0), "empty").num_rows == 0
    assert not spill.dir.exists()
