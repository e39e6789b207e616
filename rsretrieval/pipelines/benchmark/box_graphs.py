"""The ``boxes`` image-graph source: A.1.2 graphs built from object boxes (:mod:`rsretrieval.graphs.from_boxes`).

Where the boxes come from is per dataset (``datasets[].boxes``, :class:`~rsretrieval.config.BoxSourceOptions`):
DOTA / DIOR / COCO / det_json / STAR files, or on synthrs (format ``auto``) a simulated detector that degrades
the scene's ground-truth boxes (:mod:`rsretrieval.generation.simulated_detector`). The source's label in every
results row says which: ``boxes-dota``, ``boxes-coco``, ``boxes-det_json``, ``boxes-dior``, ``boxes-star``, and
``boxes-noisy-gt-simulated`` on synthrs. Labels use only characters that MLflow metric names and per-query file
stems accept (no ':' or spaces).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rsretrieval.config import BenchmarkConfig, DatasetConfig

log = logging.getLogger(__name__)

SIMULATED_LABEL = "boxes-noisy-gt-simulated"
_NO_SIZE = ("dota", "det_json")  # formats whose files do not carry the image size


def box_source_label(dcfg: DatasetConfig) -> str | None:
    """Label of the dataset's box source, or None when it has none (format auto on a real dataset, no path)."""
    b = dcfg.boxes
    if b.format == "auto":
        return SIMULATED_LABEL if dcfg.format == "synthrs" else None
    return f"boxes-{b.format}" if b.path is not None else None


def dataset_config(cfg: BenchmarkConfig, name: str) -> DatasetConfig | None:
    """The config of dataset ``name``, or of ``<dataset>-<split>`` (graph training's split datasets)."""
    exact = [d for d in cfg.datasets if d.name == name]
    prefixed = sorted((d for d in cfg.datasets if name.startswith(d.name + "-")), key=lambda d: -len(d.name))
    return (exact or prefixed or [None])[0]


def _synthrs_graphs(dcfg: DatasetConfig, ids: list[str], scenes: list[str | None]) -> dict[str, Any]:
    from rsretrieval.data.synthrs import SynthRSConfig, scene_for
    from rsretrieval.data.synthrs_text import SCENE_NAMES
    from rsretrieval.generation.simulated_detector import simulate_detections
    from rsretrieval.graphs.from_boxes import graph_from_boxes

    o, b = dcfg.synthrs, dcfg.boxes
    config = SynthRSConfig(seed=o.seed, n_train=o.n_train, n_val=o.n_val, n_test=o.n_test)
    out = {}
    for iid, scene in zip(ids, scenes):
        split, index = iid.split(":", 1)[1].rsplit("_", 1)
        spec = scene_for(config, split, int(index))
        boxes = [x for x in simulate_detections(spec, iid, b.simulated, b.seed) if (x.score or 0.0) >= b.min_score]
        boxes = [x for x in boxes if b.categories is None or x.category in b.categories]
        out[iid] = graph_from_boxes(boxes, spec.size, spec.size, SCENE_NAMES.get(scene or "", scene), (),
                                    b.spatial_relations)
    return out


def _file_graphs(dcfg: DatasetConfig, ids: list[str], uris: list[str], scenes: list[str | None]) -> tuple[dict[str, Any], list[Any]]:
    from rsretrieval.data.boxes import READERS, BoxFilter
    from rsretrieval.graphs.from_boxes import graph_from_boxes

    b = dcfg.boxes
    stems = {Path(u).stem: i for i, u in enumerate(uris)}
    if b.format == "star":
        from rsretrieval.data.star import star_scene_graphs

        graphs, skipped = star_scene_graphs(b.path, None, b.categories, b.category_map, b.spatial_relations)  # type: ignore[arg-type]
        return {ids[stems[Path(k).stem]]: g for k, g in graphs.items() if Path(k).stem in stems}, skipped
    sizes = None
    if b.format in _NO_SIZE:  # header-only reads: cheap, and needed for size classes and bounds checks
        from PIL import Image

        sizes = {}
        for stem, i in stems.items():
            try:
                with Image.open(uris[i]) as im:
                    sizes[stem] = (float(im.width), float(im.height))
            except OSError:
                continue
    flt = BoxFilter(b.category_map, b.categories, b.min_score, sizes)
    read = READERS[b.format](b.path, flt, b.coco_categories) if b.format == "coco" else READERS[b.format](b.path, flt)
    out = {}
    for stem, im in read.images.items():
        if stem in stems and im.width and im.height:
            i = stems[stem]
            out[ids[i]] = graph_from_boxes(im.boxes, im.width, im.height, scenes[i], (), b.spatial_relations)
    return out, read.skipped


def box_graphs(cfg: BenchmarkConfig, ds: Any) -> tuple[str | None, dict[str, Any], list[str]]:
    """(label, image_id -> ImageSceneGraph, notes) of the dataset's box source; label None when it has none."""
    dcfg = dataset_config(cfg, ds.name)
    label = box_source_label(dcfg) if dcfg is not None else None
    if label is None:
        return None, {}, [f"{ds.name}: no 'boxes' image graphs (set datasets[].boxes.format and path)"]
    ids = ds.images["image_id"].to_pylist()
    scenes = ds.images["scene_label"].to_pylist()
    if label == SIMULATED_LABEL:
        graphs = _synthrs_graphs(dcfg, ids, scenes)  # type: ignore[arg-type]
        return label, graphs, [f"{ds.name}: '{label}' image graphs for {len(graphs)}/{len(ids)} images, built from the "
                               "ground-truth boxes with simulated detector errors (missed, jittered, confused and "
                               "spurious boxes; not a model)"]
    graphs, skipped = _file_graphs(dcfg, ids, ds.images["uri"].to_pylist(), scenes)  # type: ignore[arg-type]
    notes = [f"{ds.name}: '{label}' image graphs for {len(graphs)}/{len(ids)} images from {dcfg.boxes.path}"]  # type: ignore[union-attr]
    if skipped:
        kinds: dict[str, int] = {}
        for s in skipped:
            kinds[s.kind] = kinds.get(s.kind, 0) + 1
        where = f"first: {skipped[0]}"
        if cfg.run_dir.is_dir():  # a benchmark run: every entry in the run folder, as the readers' skipped rows
            from rsretrieval.data.schema import ReadReport

            report = ReadReport(source=str(dcfg.boxes.path), skipped=list(skipped))  # type: ignore[union-attr]
            where = f"{report.write_skipped(cfg.run_dir, f'boxes-{ds.name}').name} names the file and entry of each"
        notes.append(f"{ds.name}: {len(skipped)} box entries left out ({', '.join(f'{n} {k}' for k, n in kinds.items())}; "
                     f"{where})")
        for s in skipped[:20]:
            log.warning("boxes: %s", s)
    return label, graphs, notes
