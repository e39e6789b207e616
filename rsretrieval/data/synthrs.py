"""``synthrs``: the embedded SYNTHETIC remote-sensing dataset (procedural, numpy + PIL only).

This is not real imagery. It renders deterministic top-down scenes (airport, industrial, port,
residential, parking, farmland, sports, forest, river) on a textured land-cover background, with
exact object counts, colours, sizes and spatial relations, so the retrieval benchmark can run
end to end on a machine without RS datasets, checkpoints or a Gemini key. Per image it writes
5 generic "original-style" captions (UCM/RSICD style: vague quantifiers, often identical across
images), 1 fine-grained caption (counts, colours, sizes, land cover, relations, in the varied wording
of real VLM-written captions: synonyms, digits / words / approximate counts, omitted details, relations
stated several ways, several sentence structures) and the ground-truth ``ImageSceneGraph`` (thesis
appendix A.1.2 schema; ``generator="ground_truth"``).

Built in is the thesis' motivation (sec. 4.1): small objects (cars of about 3x6 px, small tanks,
small planes) blur away when the 256 px image is resized to a 64 px model input and come back in
~100 px crops. Every image depends only on ``(seed, split, index)``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image
from pydantic import BaseModel, Field

from rsretrieval.data.schema import SPLITS, RSDataset, captions_table, graphs_table, images_table
# the world's types and the renderer live in their own modules; re-exported here, the dataset's front door
from rsretrieval.data.synthrs_render import render_scene
from rsretrieval.data.synthrs_scenes import (AREA_KINDS, COLORS, LAND_COVER, SCENE_TYPES, Z_ORDER, Region,
                                             SceneObject2D, SceneSpec, region_masks, sample_scene)
from rsretrieval.data.synthrs_text import build_graph, fine_grained_caption, original_captions

__all__ = ["AREA_KINDS", "COLORS", "DATASET", "FORMAT_VERSION", "LAND_COVER", "SCENE_TYPES", "Z_ORDER", "Region",
           "SceneObject2D", "SceneSpec", "SynthRSConfig", "generate_synthrs", "load_synthrs", "region_masks",
           "render_scene", "sample_scene", "scene_for"]

log = logging.getLogger(__name__)

DATASET = "synthrs"
FORMAT_VERSION = 2  # bump when rendering or captions change: invalidates existing manifests


class SynthRSConfig(BaseModel):
    """What to generate; the images depend only on (seed, split, index, image_size)."""

    seed: int = Field(0, description="Seed of the procedural generator")
    n_train: int = Field(2000, ge=0, description="Training images")
    n_val: int = Field(200, ge=0, description="Validation images")
    n_test: int = Field(300, ge=0, description="Test images")
    image_size: int = Field(256, ge=128, le=1024, description="Side of the square images in pixels")
    n_original_captions: int = Field(5, ge=1, description="Generic original-style captions per image")
    workers: int = Field(0, ge=0, description="Render processes; 0 = min(cpu count, 8). Never changes the output")

    def content_hash(self) -> str:
        """Hash of everything that changes the output (not ``workers``)."""
        d = self.model_dump(exclude={"workers"}) | {"format_version": FORMAT_VERSION}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def scene_for(config: SynthRSConfig, split: str, index: int) -> SceneSpec:
    """The scene of one image: depends only on (seed, split, index, image_size)."""
    rng = np.random.default_rng([config.seed, SPLITS.index(split), index])
    return sample_scene(rng, SCENE_TYPES[index % len(SCENE_TYPES)], config.image_size)


def _make_one(args: tuple[SynthRSConfig, str, int, str]) -> tuple[list[dict], list[dict], dict]:
    config, split, index, img_dir = args
    spec = scene_for(config, split, index)
    name = f"{split}_{index:05d}"
    uri = os.path.abspath(os.path.join(img_dir, name + ".png"))
    Image.fromarray(render_scene(spec)).save(uri, compress_level=1)
    iid = f"{DATASET}:{name}"
    graph = build_graph(spec)
    trng = np.random.default_rng([config.seed, SPLITS.index(split), index, 1])
    texts = [(f"{iid}#o{k}", t, "original") for k, t in enumerate(original_captions(spec, trng, config.n_original_captions))]
    texts.append((f"{iid}#f0", fine_grained_caption(spec, graph, trng), "fine_grained"))
    image = {"image_id": iid, "dataset": DATASET, "split": split, "uri": uri, "scene_label": spec.scene_type}
    caps = [{"caption_id": c, "image_id": iid, "text": t, "variant": v, "split": split} for c, t, v in texts]
    g = {"owner_id": iid, "kind": "image_graph", "graph": graph.model_dump_json(), "generator": "ground_truth"}
    return [image], caps, g


def load_synthrs(out_dir: Path) -> RSDataset:
    """Load a dataset written by ``generate_synthrs`` (image uris are absolute)."""
    out_dir = Path(out_dir)
    return RSDataset(DATASET, images_table(pq.read_table(out_dir / "images.parquet").to_pylist()),
                     captions_table(pq.read_table(out_dir / "captions.parquet").to_pylist()),
                     graphs_table(pq.read_table(out_dir / "graphs.parquet").to_pylist()))


def is_complete(out_dir: Path, config: SynthRSConfig) -> bool:
    try:
        m = json.loads((out_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return m.get("content_hash") == config.content_hash() and m.get("uri_root") == os.path.abspath(out_dir) and all(
        (out_dir / f"{t}.parquet").is_file() for t in ("images", "captions", "graphs"))


def generate_synthrs(config: SynthRSConfig, out_dir: Path) -> RSDataset:
    """Render the dataset into ``out_dir`` (PNGs + parquet tables + manifest), or load it if already complete."""
    out_dir = Path(out_dir)
    if is_complete(out_dir, config):
        return load_synthrs(out_dir)
    (out_dir / "manifest.json").unlink(missing_ok=True)
    img_dir = out_dir / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(config, s, i, str(img_dir)) for s, k in zip(SPLITS, (config.n_train, config.n_val, config.n_test))
            for i in range(k)]
    workers = config.workers or min(os.cpu_count() or 1, 8)
    t0 = time.perf_counter()
    log.info("synthrs: rendering %d images (seed %d) into %s ...", len(jobs), config.seed, out_dir)
    if workers > 1 and len(jobs) >= 64:
        with ProcessPoolExecutor(workers) as ex:
            results = list(ex.map(_make_one, jobs, chunksize=32))
    else:
        results = [_make_one(j) for j in jobs]
    images = [r for res in results for r in res[0]]
    caps = [c for res in results for c in res[1]]
    graphs = [res[2] for res in results]
    for name, table in (("images", images_table(images)), ("captions", captions_table(caps)),
                        ("graphs", graphs_table(graphs))):
        pq.write_table(table, out_dir / f"{name}.parquet")
    manifest = {"dataset": DATASET, "config": config.model_dump(exclude={"workers"}), "content_hash": config.content_hash(),
                "format_version": FORMAT_VERSION, "uri_root": os.path.abspath(out_dir), "n_images": len(images)}
    tmp = out_dir / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    tmp.replace(out_dir / "manifest.json")  # written last: an interrupted run regenerates
    log.info("synthrs: %d images and %d captions in %.1f s", len(images), len(caps), time.perf_counter() - t0)
    return RSDataset(DATASET, images_table(images), captions_table(caps), graphs_table(graphs))
