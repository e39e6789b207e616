"""Leakage/duplicate audit: perceptual hashes, grouping, leaks, the job, and dropping leaked items."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageEnhance

from rsretrieval.analysis.audit import (
    AuditOptions,
    dhash,
    drop_leaked,
    hamming_matrix,
    phash,
    run_audit,
    write_audit,
)
from rsretrieval.data.schema import RSDataset, captions_table, images_table

UCM = Path(__file__).parent / "data" / "ucm"
FILES = sorted(UCM.glob("*.tif"))


def bits(a: int, b: int) -> int:
    return bin(a ^ b).count("1")


def reencoded(path: Path) -> Image.Image:
    """A resized JPEG copy, slightly brightened: what a dataset re-release does to an image."""
    im = ImageEnhance.Brightness(Image.open(path).convert("RGB")).enhance(1.08).resize((200, 200))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=70)
    return Image.open(io.BytesIO(buf.getvalue()))


def test_hashes_find_a_reencoded_copy_and_not_a_different_image() -> None:
    opts = AuditOptions()
    for f, other in zip(FILES[:6], FILES[6:12]):
        orig, copy, diff = Image.open(f), reencoded(f), Image.open(other)
        assert bits(dhash(orig), dhash(copy)) <= opts.dhash_max and bits(phash(orig), phash(copy)) <= opts.phash_max
        assert bits(dhash(orig), dhash(diff)) > opts.dhash_max or bits(phash(orig), phash(diff)) > opts.phash_max


def test_hamming_matrix_matches_naive() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2**63, size=7, dtype=np.uint64) * np.uint64(2) + np.uint64(1)  # use the top bit too
    b = rng.integers(0, 2**63, size=5, dtype=np.uint64)
    naive = np.array([[bits(int(x), int(y)) for y in b] for x in a])
    assert (hamming_matrix(a, b) == naive).all()


def _dataset(tmp: Path, name: str, items: list[tuple[str, Image.Image, str, list[str]]]) -> RSDataset:
    imgs, caps = [], []
    for i, (fname, im, split, texts) in enumerate(items):
        path = tmp / name / fname
        path.parent.mkdir(parents=True, exist_ok=True)
        im.convert("RGB").save(path)
        iid = f"{name}:{fname}"
        imgs.append({"image_id": iid, "dataset": name, "split": split, "uri": str(path)})
        caps += [{"caption_id": f"{name}:{i}:{j}", "image_id": iid, "text": t, "variant": "original", "split": split}
                 for j, t in enumerate(texts)]
    return RSDataset(name, images_table(imgs), captions_table(caps))


@pytest.fixture()
def two_datasets(tmp_path: Path) -> list[RSDataset]:
    """'a': train {0, 1}, test {2, copy of 0, 3}; 'b': train {copy of 2, 4}. Caption texts repeat on purpose."""
    im = [Image.open(f) for f in FILES[:5]]
    a = _dataset(tmp_path, "a", [("0.png", im[0], "train", ["a farm", "green fields"]),
                                 ("1.png", im[1], "train", ["a river"]),
                                 ("2.png", im[2], "test", ["A farm .", "a port"]),
                                 ("0copy.png", reencoded(FILES[0]), "test", ["a farm next to a road"]),
                                 ("3.png", im[3], "test", ["a port", "two tanks"])])
    b = _dataset(tmp_path, "b", [("2copy.png", reencoded(FILES[2]), "train", ["boats in a harbour"]),
                                 ("4.png", im[4], "train", ["two tanks"])])
    return [a, b]


def test_audit_finds_duplicates_and_leaks(two_datasets: list[RSDataset], tmp_path: Path) -> None:
    opts = AuditOptions()
    res = run_audit(two_datasets, opts)
    groups = res.image_groups.groupby("group")["image_id"].apply(set).tolist()
    assert sorted(groups, key=len) == [{"a:0.png", "a:0copy.png"}, {"a:2.png", "b:2copy.png"}]
    leaks = {(r.kind, r.item_id, r.matched_id, r.scope) for r in res.leaks.itertuples()}
    assert leaks == {("image", "a:0copy.png", "a:0.png", "cross-split"),
                     ("image", "a:2.png", "b:2copy.png", "cross-dataset"),
                     ("caption", "a:2:0", "a:0:0", "cross-split"),  # 'A farm .' == 'a farm' normalised
                     ("caption", "a:4:1", "b:1:0", "cross-dataset")}  # 'two tanks'
    s = res.summary.set_index(["dataset", "split"])
    assert s.loc[("a", "test"), "leaked_images_cross_split"] == 1
    assert s.loc[("a", "test"), "leaked_images_cross_dataset"] == 1
    assert s.loc[("a", "test"), "images_also_in_other_datasets"] == 1
    assert s.loc[("a", "test"), "cross_image_caption_texts"] == 1  # 'a port' on images 2 and 3
    assert s.loc[("a", "test"), "image_dup_groups"] == 0  # the copies sit in other splits
    paths = write_audit(res, tmp_path / "audit", opts)
    assert all(p.is_file() for p in paths)
    assert pd.read_parquet(paths[0])["dhash"].str.len().eq(16).all()

    test = two_datasets[0].split("test")
    clean, n_img, n_cap = drop_leaked(test, tmp_path / "audit" / "leaks.csv")
    assert (n_img, n_cap) == (2, 4)  # images 2 and 0copy (3 captions) + caption 'two tanks'
    assert clean.images["image_id"].to_pylist() == ["a:3.png"]
    assert clean.captions["text"].to_pylist() == ["a port"]


def test_audit_job_on_ucm_fixture(tmp_path: Path) -> None:
    from rayjobs.audit import main

    res = main(["--set", f"datasets=[{{name: ucm, format: karpathy, annotations: {UCM / 'dataset.json'}, "
                f"image_root: {UCM}}}]", "--output-dir", str(tmp_path), "--set", "mlflow.enabled=false"])
    row = res.summary.iloc[0]
    assert (row["images"], row["captions"], row["distinct_texts"]) == (21, 105, 100)  # 4 texts repeat, one thrice
    assert row["dup_caption_texts"] == 4 and row["cross_image_caption_texts"] == 0
    assert (tmp_path / "audit" / "summary.md").is_file() and res.leaks.empty


def test_audit_subcommand(tmp_path: Path, capsys) -> None:
    from rsretrieval.cli import main

    res = main(["audit", "--set", f"datasets=[{{name: ucm, format: karpathy, annotations: {UCM / 'dataset.json'}, "
                f"image_root: {UCM}}}]", "--output-dir", str(tmp_path), "--run-name", "a", "--set", "mlflow.enabled=false"])
    assert len(res.hashes) == 21 and (tmp_path / "a" / "leaks.csv").is_file()
    assert "Duplicate and leakage audit" in capsys.readouterr().out


def test_ray_data_hashes_equal_the_serial_ones(two_datasets: list[RSDataset], ray_local) -> None:
    """The audit's Ray Data stage gives the same rows in the same order as hashing in the driver, in
    several blocks, and the audit built on them finds the same leaks."""
    from rsretrieval.analysis.audit import image_hashes
    from rsretrieval.pipelines.stages.image_hashes import image_hashes_ray

    serial = image_hashes(two_datasets)
    spread = image_hashes_ray(two_datasets, batch_size=2, blocks=3)
    pd.testing.assert_frame_equal(spread, serial)
    opts = AuditOptions()
    pd.testing.assert_frame_equal(run_audit(two_datasets, opts, spread).leaks, run_audit(two_datasets, opts).leaks)
