"""Arrow tables the driver keeps for a whole run, moved out of its heap into memory-mapped files.

A run's driver holds the evaluated split's tables (images, captions, ground-truth graphs), its scene
tables and its graph tables from the step that makes them to the end of the run: at NWPU size about
300 MB, all of it per-row data. Written once to an uncompressed Arrow IPC file and read back through
a memory map, the same table is zero-copy over file-backed pages: the kernel pages them in when a
step reads them and can drop them under memory pressure (they are clean), so the driver's anonymous
memory, what it must hold, no longer grows with the corpus (``driver_memory.csv``). This is how
Hugging Face ``datasets`` and Ray's object store keep large tables too.

Files are unlinked as soon as they are mapped (POSIX): the mapping keeps them readable, nothing is
left behind if the run dies, and their disk space returns when the tables are dropped.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa

BATCH_ROWS = 65_536  # rows per record batch written: the writer never copies the whole table at once


class ArrowSpill:
    """Maps tables to files under a private temporary folder (``root``: where it is made; None = the
    system's temporary folder, or ``$RSR_SPILL_DIR``)."""

    def __init__(self, root: Path | str | None = None) -> None:
        root = root or os.environ.get("RSR_SPILL_DIR") or None
        if root is not None:
            Path(root).mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="rsr-spill-", dir=root))
        self._count = 0
        self.bytes = 0  # what has been mapped so far

    def map(self, table: pa.Table, name: str) -> pa.Table:
        """``table`` as a memory-mapped copy (equal in schema, rows and chunking up to BATCH_ROWS)."""
        if table.num_rows == 0:
            return table
        self._count += 1
        path = self.dir / f"{self._count:04d}-{re.sub(r'[^A-Za-z0-9._-]+', '_', name)[:80]}.arrow"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            for batch in table.to_batches(max_chunksize=BATCH_ROWS):
                writer.write_batch(batch)
        mapped = pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()
        self.bytes += path.stat().st_size
        if os.name == "posix":
            path.unlink()
        return mapped

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "ArrowSpill":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
