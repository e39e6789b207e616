"""Issue 9, scenario 8: a small object store and large images: the embedding stage completes with every
row, no worker is OOM-killed, and the spilling that happened is reported (log line + ``_SUCCESS``).

A two-node ``ray.cluster_utils.Cluster`` on this machine with 80 MB object stores (Ray's minimum is
~75 MB). The stage passes file names, not pixels, through the object store: each actor decodes its
2048 x 2048 files itself. So the pressure here is the realistic one, other work filling the store: a
driver thread keeps putting decoded 2048 x 2048 images (12 MiB each) while the stage runs, and all of
them stay referenced, so Ray must spill them to disk to make room for the stage's own blocks.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

STORE = 80 * 1024 ** 2  # bytes per node
N_IMAGES, SIDE = 32, 2048
OOM_LINE = re.compile(r"low on memory|out of memory|OutOfMemoryError|killing worker.*memory", re.IGNORECASE)


@pytest.fixture(scope="module")
def small_store_cluster():
    """Head (2 CPUs) + one worker node (1 CPU), 80 MB object store each; replaces any Ray of this process."""
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()  # the shared test Ray restarts itself on next use (conftest ray_local)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "object_store_memory": STORE,
                                                            "include_dashboard": False})
    cluster.add_node(num_cpus=1, object_store_memory=STORE)
    ray.init(address=cluster.address)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def _large_images(folder: Path) -> list[str]:
    """N_IMAGES noisy SIDE x SIDE JPEGs (about 12 MiB each decoded)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (SIDE // 8, SIDE // 8, 3), dtype=np.uint8)
    uris = []
    for i in range(N_IMAGES):
        pixels = np.kron(np.roll(base, i, axis=0), np.ones((8, 8, 1), np.uint8))  # blocky: fast to encode
        Image.fromarray(pixels).save(folder / f"big_{i}.jpg", quality=90)
        uris.append(str(folder / f"big_{i}.jpg"))
    return uris


def _rs_tiny_checkpoint(path: Path) -> Path:
    """Seeded untrained rs-tiny weights: this test measures memory, not retrieval."""
    import open_clip
    import torch

    from rsretrieval.encoders.loader import ensure_model_configs
    from rsretrieval.encoders.registry import get_backbone_spec

    ensure_model_configs()
    torch.manual_seed(0)
    torch.save(open_clip.create_model(get_backbone_spec("rs-tiny").arch).state_dict(), path)
    return path


def _oom_kills(cluster) -> list[str]:
    """Lines of the cluster's raylet logs that report a worker killed for memory."""
    logs = Path(cluster.head_node.get_session_dir_path()) / "logs"
    return [ln for f in logs.glob("raylet*.out") for ln in f.read_text(errors="replace").splitlines() if OOM_LINE.search(ln)]


@pytest.mark.slow
def test_small_object_store_large_images_complete_and_report_spilling(small_store_cluster, tmp_path: Path) -> None:
    import ray

    from rsretrieval.config import EmbedConfig
    from rsretrieval.pipelines.stages.embed import embed_table, read_embeddings
    from rsretrieval.pipelines.runtime.ray_memory import spill_stats

    uris = _large_images(tmp_path / "img")
    ids = [f"big:{i}" for i in range(N_IMAGES)]
    table = pa.table({"image_id": ids, "uri": uris})
    checkpoint = _rs_tiny_checkpoint(tmp_path / "rs-tiny.pt")
    held: list = []  # references keep the pressure objects alive: Ray must spill, not free them
    stop = threading.Event()

    def fill_store() -> None:  # other work on the cluster: decoded large images in the object store
        rng = np.random.default_rng(1)
        while not stop.is_set() and len(held) < 48:
            held.append(ray.put(rng.integers(0, 255, (SIDE, SIDE, 3), dtype=np.uint8)))
            time.sleep(0.05)

    filler = threading.Thread(target=fill_store, daemon=True)
    t0 = time.perf_counter()
    filler.start()
    try:
        path, cached = embed_table("images", table, "rs-tiny", checkpoint, EmbedConfig(batch_size=8, concurrency=2),
                                   tmp_path / "cache")
    finally:
        stop.set()
        filler.join()
    seconds = time.perf_counter() - t0
    vectors = read_embeddings(path, ids)
    success = json.loads((path / "_SUCCESS").read_text())
    stage_spill = success["object_store_spill"]
    sample = ray.get(held[0])  # the first objects were spilled: reading one restores it intact
    total = spill_stats()
    kills = _oom_kills(small_store_cluster)
    print(f"\nmemory pressure: {N_IMAGES} images {SIDE}x{SIDE} embedded in {seconds:.1f} s on 2 nodes x "
          f"{STORE // 2 ** 20} MiB object store, {len(held)} x 12 MiB objects held; during the stage: spilled "
          f"{stage_spill['spilled_mib']} MiB / {stage_spill['spilled_objects']} objects; cluster total: {total}; "
          f"OOM kills {len(kills)}")
    assert not cached and success["rows"] == N_IMAGES and vectors.shape[0] == N_IMAGES
    assert np.isfinite(vectors).all() and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-3)
    assert sample.shape == (SIDE, SIDE, 3)
    assert stage_spill["spilled_objects"] > 0 and total["spilled_mib"] >= stage_spill["spilled_mib"]
    assert not kills, kills[:3]


def test_spill_summary_parsing() -> None:
    from rsretrieval.pipelines.runtime.ray_memory import parse_spill_summary, spill_delta, spill_note

    text = ("--- Aggregate object store stats across all nodes ---\n"
            "Plasma memory usage 60 MiB, 5 objects, 75.0% full, 60.0% needed\n"
            "Spilled 192 MiB, 16 objects, avg write throughput 149 MiB/s\n"
            "Restored 24 MiB, 2 objects, avg read throughput 827 MiB/s\n")
    after = parse_spill_summary(text)
    assert after == {"spilled_mib": 192, "spilled_objects": 16, "restored_mib": 24, "restored_objects": 2}
    before = parse_spill_summary("Plasma memory usage 0 MiB, 0 objects, 0.0% full, 0.0% needed\n")
    assert before == dict.fromkeys(after, 0)
    delta = spill_delta(before, after)
    assert delta == after and spill_delta(None, after) is None
    assert "spilled 192 MiB (16 objects)" in spill_note("embeddings images", delta)
    assert spill_note("x", before) is None and spill_note("x", None) is None
