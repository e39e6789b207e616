"""Dataset formats as data: one reader module per native format, chosen by ``DatasetConfig.format``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.compute as pc

from rsretrieval.config import DatasetConfig, SynthRSOptions
from rsretrieval.data.errors import DatasetNotFoundError
from rsretrieval.data.schema import RSDataset, find_duplicate_captions


def synthrs_dir(options: SynthRSOptions, cache_dir: Path) -> Path:
    """Cache folder of one synthrs configuration."""
    key = hashlib.sha256(json.dumps(options.model_dump(), sort_keys=True).encode()).hexdigest()[:12]
    return Path(cache_dir) / "synthrs" / key


def synthrs_generated(options: SynthRSOptions, cache_dir: Path) -> bool:
    """Whether the synthetic dataset of ``options`` is already rendered in ``cache_dir``."""
    from rsretrieval.data.synthrs import SynthRSConfig, is_complete

    config = SynthRSConfig(seed=options.seed, n_train=options.n_train, n_val=options.n_val, n_test=options.n_test)
    return is_complete(synthrs_dir(options, cache_dir), config)


def load_synthrs_dataset(options: SynthRSOptions, cache_dir: Path) -> RSDataset:
    """Generate (first use) or load the embedded synthetic dataset."""
    from rsretrieval.data.synthrs import SynthRSConfig, generate_synthrs

    config = SynthRSConfig(seed=options.seed, n_train=options.n_train, n_val=options.n_val, n_test=options.n_test)
    return generate_synthrs(config, synthrs_dir(options, cache_dir))


def required_path(cfg: DatasetConfig, field: str) -> Path:
    value = getattr(cfg, field)
    if value is None:
        raise DatasetNotFoundError(
            f"dataset '{cfg.name}' ({cfg.format}): {field}", "<not set>",
            f"Set datasets[].{field} in the benchmark config to the {cfg.format} {field.replace('_', ' ')}.",
        )
    return value


def load_dataset(cfg: DatasetConfig, cache_dir: Path) -> RSDataset:
    """Read one configured dataset into the common tables (all splits)."""
    check = cfg.verify_images != "off"  # file existence; decoding is checked later, on the evaluated split only
    if cfg.format == "synthrs":
        ds = load_synthrs_dataset(cfg.synthrs, cache_dir)
    elif cfg.format == "karpathy":
        from rsretrieval.data.karpathy import read_karpathy

        ds = read_karpathy(required_path(cfg, "annotations"), required_path(cfg, "image_root"), dataset=cfg.name, verify_images=check)
    elif cfg.format == "nwpu":
        from rsretrieval.data.nwpu import read_nwpu

        ds = read_nwpu(required_path(cfg, "annotations"), required_path(cfg, "image_root"), dataset=cfg.name, verify_images=check)
    elif cfg.format == "precomp":
        from rsretrieval.data.precomp import read_precomp

        ds = read_precomp(required_path(cfg, "annotations"), required_path(cfg, "image_root"), dataset=cfg.name, verify_images=check)
    elif cfg.format == "custom":
        from rsretrieval.data.custom import read_custom

        ds = read_custom(required_path(cfg, "annotations"), required_path(cfg, "image_root"), dataset=cfg.name, verify_images=check)
    elif cfg.format == "harma":
        from rsretrieval.data.harma import read_harma

        ds = read_harma(required_path(cfg, "annotations"), required_path(cfg, "image_root"), dataset=cfg.name, verify_images=check)
    elif cfg.format == "webdataset":
        from rsretrieval.data.webdataset import read_webdataset

        ds = read_webdataset(required_path(cfg, "annotations"), cache_dir, dataset=cfg.name, options=cfg.webdataset,
                             verify_images=check)
    elif cfg.format == "metadata":
        from rsretrieval.data.metadata_table import read_metadata_table

        ds = read_metadata_table(required_path(cfg, "annotations"), cfg.image_root, dataset=cfg.name,
                                 options=cfg.metadata, verify_images=check)
    elif cfg.format == "fit_rs":
        from rsretrieval.data.fit_rs import read_fit_rs

        ds = read_fit_rs(required_path(cfg, "annotations"), required_path(cfg, "image_root"), dataset=cfg.name,
                         options=cfg.fit_rs, verify_images=check)
    else:  # pragma: no cover - pydantic's Literal already rejects it
        raise ValueError(f"unknown dataset format {cfg.format!r}")
    return ds


def evaluation_split(ds: RSDataset, cfg: DatasetConfig) -> RSDataset:
    """The split to benchmark, optionally cut to the first ``limit_images`` images."""
    sub = ds.split(cfg.split)
    if sub.images.num_rows == 0:
        splits = sorted(set(ds.images["split"].to_pylist()))
        raise DatasetNotFoundError(
            f"split '{cfg.split}' of dataset '{cfg.name}'", cfg.annotations or "synthrs",
            f"Available splits: {splits}. Set datasets[].split accordingly.",
        )
    if cfg.limit_images is not None:
        images = sub.images.slice(0, cfg.limit_images)
        captions = sub.captions.filter(pc.is_in(sub.captions["image_id"], images["image_id"]))
        sub = RSDataset(sub.name, images, captions, sub.graphs, sub.report)
    return sub


def duplicate_summary(ds: RSDataset) -> dict[str, int]:
    """Counts of duplicate caption texts in a (split of a) dataset, for logs and MLflow."""
    dups = find_duplicate_captions(ds.captions)
    return {"duplicate_caption_texts": len(dups),
            "duplicate_caption_texts_cross_image": sum(d.cross_image for d in dups)}
