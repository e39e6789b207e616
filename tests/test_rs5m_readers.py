"""RS5M-shaped input (issue 20, part 3): webdataset tar shards and img2dataset-style metadata tables.

Every fixture is built here in tmp_path (tiny PNGs via PIL). Good samples and rows are always kept; bad
ones are left out and reported with the shard + member or table + row that holds them.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rsretrieval.config import DatasetConfig, MetadataTableOptions, WebDatasetOptions, load_config
from rsretrieval.data.errors import DatasetFormatError, DatasetNotFoundError
from rsretrieval.data.metadata_table import read_metadata_table
from rsretrieval.data.registry import evaluation_split, load_dataset
from rsretrieval.data.schema import CAPTIONS_SCHEMA, IMAGES_SCHEMA, RSDataset
from rsretrieval.data.tar_shards import expand_braces, find_shards
from rsretrieval.data.webdataset import read_webdataset
from tests.conftest import QUICK_CONFIG


def png(seed: int, size: int = 16) -> bytes:
    """A small random RGB PNG."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def write_shard(path: Path, members: list[tuple[str, bytes]]) -> Path:
    """A tar shard of (member name, bytes) in the given order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz" if path.name.endswith(".gz") else "w") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def samples(prefix: str, n: int, seed: int = 0, size: int = 16) -> list[tuple[str, bytes]]:
    """n good webdataset samples: <key>.png + <key>.txt + <key>.json."""
    out = []
    for i in range(n):
        key = f"{prefix}{i:04d}"
        meta = {"key": key, "status": "success", "caption": f"json caption {key}"}
        out += [(f"{key}.png", png(seed + i, size)), (f"{key}.txt", f"caption of {key} .".encode()),
                (f"{key}.json", json.dumps(meta).encode())]
    return out


def check_tables(ds: RSDataset) -> None:
    """Schemas exact, ids unique, every uri an absolute path to a decodable image."""
    from PIL import Image

    assert ds.images.schema.equals(IMAGES_SCHEMA) and ds.captions.schema.equals(CAPTIONS_SCHEMA)
    ids = ds.images["image_id"].to_pylist()
    assert len(ids) == len(set(ids)) and len(set(ds.captions["caption_id"].to_pylist())) == ds.captions.num_rows
    assert set(ds.captions["image_id"].to_pylist()) <= set(ids)
    for uri in ds.images["uri"].to_pylist():
        assert os.path.isabs(uri)
        with Image.open(uri) as im:
            im.load()


def kinds(ds: RSDataset) -> dict[str, int]:
    assert ds.report is not None
    return ds.report.skipped_counts()


# --- webdataset --------------------------------------------------------------------------------

def test_webdataset_round_trip(tmp_path: Path) -> None:
    write_shard(tmp_path / "shards/00000.tar", samples("0000", 3))
    write_shard(tmp_path / "shards/00001.tar", samples("0001", 2, seed=10))
    ds = read_webdataset(tmp_path / "shards", tmp_path / "cache", "rs5m")
    check_tables(ds)
    assert ds.images["image_id"].to_pylist() == [f"rs5m:00000/00000{i:03d}" for i in range(3)] + \
        [f"rs5m:00001/00010{i:03d}" for i in range(2)]
    assert ds.captions["text"].to_pylist()[0] == "caption of 00000000 ."
    assert set(ds.images["split"].to_pylist()) == {"test"} and kinds(ds) == {}
    first = ds.images["uri"].to_pylist()[0]
    assert Path(first).read_bytes() == png(0) and str(tmp_path / "cache" / "webdataset") in first
    # a gzipped shard beside them
    write_shard(tmp_path / "shards/more/00002.tar.gz", samples("0002", 1, seed=20))
    gz = read_webdataset(tmp_path / "shards", tmp_path / "cache", "rs5m")
    assert gz.images["image_id"].to_pylist()[-1] == "rs5m:more/00002/00020000" and kinds(gz) == {}
    # the same shards named by a brace pattern, and by a glob
    pattern = read_webdataset(str(tmp_path / "shards/{00000..00001}.tar"), tmp_path / "cache", "rs5m")
    assert pattern.images["image_id"].to_pylist() == ds.images["image_id"].to_pylist()
    assert len(find_shards(str(tmp_path / "shards/*.tar"))[0]) == 2
    assert expand_braces("s/{08..10}.tar") == ["s/08.tar", "s/09.tar", "s/10.tar"]
    assert expand_braces("{a,b}/{1..2}") == ["a/1", "a/2", "b/1", "b/2"]
    with pytest.raises(DatasetNotFoundError, match=r"1 of the 3 shards.*00002\.tar"):
        find_shards(str(tmp_path / "shards/{00000..00002}.tar"))


def test_webdataset_caption_and_split_from_json(tmp_path: Path) -> None:
    members = samples("a", 2)
    members[2] = ("a0000.json", json.dumps({"caption": ["first", " second "], "split": "val"}).encode())
    write_shard(tmp_path / "s.tar", members)
    opts = WebDatasetOptions(caption_field="caption", split_field="split")
    ds = read_webdataset(tmp_path / "s.tar", tmp_path / "cache", "w", opts)
    assert ds.captions["text"].to_pylist() == ["first", "second", "json caption a0001"]
    assert ds.images["split"].to_pylist() == ["val", "test"]
    assert ds.captions["caption_id"].to_pylist() == ["w:s/a0000#0", "w:s/a0000#1", "w:s/a0001#0"]


def test_webdataset_extraction_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import rsretrieval.data.tar_shards as shards

    write_shard(tmp_path / "shards/00000.tar", samples("x", 2))
    write_shard(tmp_path / "shards/00001.tar", samples("y", 2, seed=5))
    calls: list[str] = []
    real = shards.extract_shard
    monkeypatch.setattr(shards, "extract_shard",
                        lambda shard, folder: calls.append(Path(shard).name) or real(shard, folder))
    first = read_webdataset(tmp_path / "shards", tmp_path / "cache", "c")
    assert sorted(calls) == ["00000.tar", "00001.tar"]
    mtimes = {u: os.stat(u).st_mtime_ns for u in first.images["uri"].to_pylist()}
    calls.clear()
    again = read_webdataset(tmp_path / "shards", tmp_path / "cache", "c")
    assert calls == [] and again.fingerprint() == first.fingerprint()
    assert {u: os.stat(u).st_mtime_ns for u in again.images["uri"].to_pylist()} == mtimes
    # a shard that changes gets a new cache folder; the other one is not touched
    write_shard(tmp_path / "shards/00001.tar", samples("y", 3, seed=5))
    third = read_webdataset(tmp_path / "shards", tmp_path / "cache", "c")
    assert calls == ["00001.tar"] and third.images.num_rows == 5
    # extracted images deleted from the cache: the shard is extracted again (verify_images on)
    calls.clear()
    os.remove(third.images["uri"].to_pylist()[0])
    read_webdataset(tmp_path / "shards", tmp_path / "cache", "c")
    assert calls == ["00000.tar"]
    assert not list((tmp_path / "cache" / "webdataset").glob("*.tmp-*"))


def test_truncated_shard_keeps_samples_before_the_damage_and_other_shards(tmp_path: Path) -> None:
    good = write_shard(tmp_path / "shards/00000.tar", samples("g", 4))
    cut = write_shard(tmp_path / "shards/00001.tar", samples("t", 6, seed=20, size=32))
    data = cut.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    ds = read_webdataset(tmp_path / "shards", tmp_path / "cache", "r")
    check_tables(ds)
    ids = ds.images["image_id"].to_pylist()
    assert [i for i in ids if i.startswith("r:00000/")] == [f"r:00000/g{i:04d}" for i in range(4)]  # other shard whole
    kept = [i for i in ids if i.startswith("r:00001/")]
    assert 1 <= len(kept) < 6 and kept == [f"r:00001/t{i:04d}" for i in range(len(kept))]
    assert ds.report is not None
    damage = [s for s in ds.report.skipped if s.kind == "damaged_shard"]
    assert len(damage) == 1 and damage[0].source == str(cut)
    assert damage[0].entry.startswith("t0") and f"the {len(kept)} samples read before are kept" in damage[0].detail
    assert good.stat().st_size > 0


def test_shard_cut_at_a_member_boundary_and_corrupt_header(tmp_path: Path) -> None:
    members = samples("b", 4)
    whole = write_shard(tmp_path / "whole.tar", members).read_bytes()
    boundary = whole.index(b"b0002.png")  # the header of sample 2: cut exactly before it
    (tmp_path / "boundary").mkdir()
    (tmp_path / "boundary/s.tar").write_bytes(whole[:boundary])
    ds = read_webdataset(tmp_path / "boundary", tmp_path / "cache", "b")
    assert ds.images.num_rows == 2 and kinds(ds) == {"damaged_shard": 1}
    assert "without the tar end-of-archive marker" in ds.report.skipped[0].detail  # type: ignore[union-attr]
    assert ds.report.skipped[0].entry == f"byte {boundary} (after member b0001.json)"  # type: ignore[union-attr]
    corrupt = bytearray(whole)
    corrupt[boundary + 148: boundary + 156] = b"9999999\0"  # a wrong header checksum
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt/s.tar").write_bytes(bytes(corrupt))
    ds = read_webdataset(tmp_path / "corrupt", tmp_path / "cache", "b")
    assert ds.images.num_rows == 2 and kinds(ds) == {"damaged_shard": 1}
    assert "are not readable tar members" in ds.report.skipped[0].detail  # type: ignore[union-attr]


def test_bad_members_are_left_out_and_named(tmp_path: Path) -> None:
    members = samples("m", 3) + [
        ("nocap.png", png(99)),  # no caption
        ("empty.png", png(98)), ("empty.txt", b"  \n"),  # empty caption
        ("junk.jpg", b"this is not a jpeg"), ("junk.txt", b"a caption"),  # corrupt image member
        ("orphan.txt", b"caption without image"),  # no image
        ("latin.png", png(97)), ("latin.txt", "caf\xe9".encode("latin-1")),  # caption not UTF-8
    ]
    shard = write_shard(tmp_path / "shards/00000.tar", members)
    (tmp_path / "shards/00001.tar").write_bytes(b"not a tar archive" * 64)
    ds = read_webdataset(tmp_path / "shards", tmp_path / "cache", "bad")
    check_tables(ds)
    assert ds.images["image_id"].to_pylist() == [f"bad:00000/m{i:04d}" for i in range(3)]
    assert ds.report is not None
    got = {(Path(s.source).name, s.entry, s.kind) for s in ds.report.skipped}
    assert got == {("00000.tar", "nocap.png", "no_caption"), ("00000.tar", "empty.png", "empty_caption"),
                   ("00000.tar", "junk.jpg", "bad_image"), ("00000.tar", "orphan.txt", "no_image"),
                   ("00000.tar", "latin.png", "bad_caption"), ("00001.tar", "(whole shard)", "unreadable_shard")}
    assert all(s.source == str(shard) for s in ds.report.skipped if s.source.endswith("00000.tar"))
    # the report's CSV and footnote
    csv = ds.report.write_skipped(tmp_path, "bad")
    assert csv.read_text().count("\n") == 7
    assert ds.report.skipped_note("bad").startswith("bad: 6 samples/rows left out while reading (1 bad_caption, ")


def test_webdataset_without_any_usable_sample_is_an_error(tmp_path: Path) -> None:
    write_shard(tmp_path / "s.tar", [("a.png", png(1)), ("b.txt", b"x")])
    with pytest.raises(DatasetFormatError, match="no usable samples in 1 shards"):
        read_webdataset(tmp_path / "s.tar", tmp_path / "cache")


# --- metadata tables ---------------------------------------------------------------------------

def img2dataset_output(root: Path, n: int = 4) -> Path:
    """img2dataset-style `files` output: 00000.parquet (url, key, caption, status, error_message) + 00000/<key>.png,
    with two failed downloads among the rows."""
    (root / "00000").mkdir(parents=True)
    rows = []
    for i in range(n + 2):
        key = f"00000{i:04d}"
        ok = i < n
        if ok:
            (root / "00000" / f"{key}.png").write_bytes(png(i))
        rows.append({"url": f"https://example.org/{i}.png", "key": key, "caption": f"remote sensing scene {i}",
                     "status": "success" if ok else "failed_to_download",
                     "error_message": None if ok else "HTTP Error 404"})
    pq.write_table(pa.Table.from_pylist(rows), root / "00000.parquet")
    return root


def test_metadata_parquet_img2dataset_output(tmp_path: Path) -> None:
    out = img2dataset_output(tmp_path / "out")
    opts = MetadataTableOptions(image_template="{key:.5}/{key}.png", id_column="key")
    ds = read_metadata_table(out, None, "rs5m", opts)
    check_tables(ds)
    assert ds.images["image_id"].to_pylist() == [f"rs5m:00000{i:04d}" for i in range(4)]
    assert ds.captions["text"].to_pylist() == [f"remote sensing scene {i}" for i in range(4)]
    assert ds.report is not None
    assert [(Path(s.source).name, s.entry, s.kind) for s in ds.report.skipped] == \
        [("00000.parquet", "row 5", "status"), ("00000.parquet", "row 6", "status")]
    assert ds.report.skipped[0].detail == "img2dataset status 'failed_to_download' (HTTP Error 404)"
    # the same table read by URL only: every usable row is a URL, so the error says to run img2dataset
    with pytest.raises(DatasetFormatError, match="all 4 usable rows name http.*Run img2dataset"):
        read_metadata_table(out, None, "rs5m", MetadataTableOptions(image_column="url"))


def test_metadata_csv_with_bad_rows(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    for i in range(3):
        (tmp_path / "img" / f"{i}.png").write_bytes(png(i))
    absolute = tmp_path / "elsewhere.png"
    absolute.write_bytes(png(7))
    (tmp_path / "img" / "unreadable.png").write_bytes(png(8))
    os.chmod(tmp_path / "img" / "unreadable.png", 0)
    lines = ["path,text,split,status",
             "0.png,a harbour with boats,test,success",
             "0.png,boats moored in a harbour,test,success",  # second caption of the same image
             "1.png,a green field,val,success",
             f"{absolute},an absolute path,test,success",
             "2.png,   ,test,success",  # empty caption
             "missing.png,a caption,test,success",  # image file missing
             "https://example.org/x.jpg,a URL,test,success",  # not downloaded
             "2.png,a failed download,test,failed_to_resize",
             "2.png,an unknown split,holdout,success"]
    if os.access(tmp_path / "img" / "unreadable.png", os.R_OK):  # root ignores permissions
        lines.append("gone.png,stands in for the unreadable file,test,success")
    else:
        lines.append("unreadable.png,cannot be read,test,success")
    table = tmp_path / "meta.csv"
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    opts = MetadataTableOptions(image_column="path", caption_column="text", split_column="split")
    ds = read_metadata_table(table, tmp_path / "img", "mine", opts)
    check_tables(ds)
    assert ds.images["image_id"].to_pylist() == ["mine:0.png", "mine:1.png", f"mine:{absolute}"]
    assert ds.images["split"].to_pylist() == ["test", "val", "test"]
    assert ds.captions["caption_id"].to_pylist() == ["mine:0.png#0", "mine:0.png#1", "mine:1.png#0", f"mine:{absolute}#0"]
    assert ds.report is not None
    assert [(s.entry, s.kind) for s in ds.report.skipped] == [
        ("row 5 (line 6)", "empty_caption"), ("row 6 (line 7)", "missing_file"), ("row 7 (line 8)", "url"),
        ("row 8 (line 9)", "status"), ("row 9 (line 10)", "bad_split"), ("row 10 (line 11)", "missing_file")]
    assert all(s.source == str(table) for s in ds.report.skipped)
    with pytest.raises(DatasetFormatError, match=r"header.*missing column\(s\) \['caption'\]"):
        read_metadata_table(table, tmp_path / "img", "mine", MetadataTableOptions(image_column="path"))


def test_damaged_table_keeps_other_tables(tmp_path: Path) -> None:
    out = img2dataset_output(tmp_path / "out")
    (out / "00001.parquet").write_bytes(b"PAR1 not really parquet")
    ds = read_metadata_table(out, None, "m", MetadataTableOptions(image_template="{key:.5}/{key}.png"))
    assert ds.images.num_rows == 4 and kinds(ds) == {"status": 2, "damaged_table": 1}


# --- config, registry, preflight ---------------------------------------------------------------

def test_both_formats_through_the_registry_and_preflight(tmp_path: Path) -> None:
    from rsretrieval.pipelines.runtime.preflight import verify_dataset_paths

    write_shard(tmp_path / "shards/00000.tar", samples("r", 3))
    out = img2dataset_output(tmp_path / "out")
    wds_cfg = DatasetConfig(name="rs5m", format="webdataset", annotations=str(tmp_path / "shards/{00000..00000}.tar"))
    meta_cfg = DatasetConfig.model_validate({"name": "meta", "format": "metadata", "annotations": str(out),
                                            "metadata": {"image_template": "{key:.5}/{key}.png"}})
    from rsretrieval.config import BenchmarkConfig
    from rsretrieval.pipelines.benchmark.plan_report import PlanCache

    plan = PlanCache(BenchmarkConfig(datasets=[wds_cfg], cache_dir=tmp_path / "cache"))
    assert plan.dataset(wds_cfg) is None and "not extracted yet" in plan.reasons["rs5m"]  # a plan never extracts
    for cfg in (wds_cfg, meta_cfg):
        verify_dataset_paths(cfg)
        ds = evaluation_split(load_dataset(cfg, tmp_path / "cache"), cfg)
        assert ds.images.num_rows in (3, 4) and ds.captions.num_rows == ds.images.num_rows
    assert PlanCache(BenchmarkConfig(datasets=[wds_cfg], cache_dir=tmp_path / "cache")).dataset(wds_cfg) is not None
    with pytest.raises(DatasetNotFoundError, match="shards named by the pattern"):
        verify_dataset_paths(DatasetConfig(name="x", format="webdataset", annotations=str(tmp_path / "s/{0..3}.tar")))
    with pytest.raises(DatasetNotFoundError, match="Image folder"):
        verify_dataset_paths(DatasetConfig(name="x", format="metadata", annotations=out, image_root=tmp_path / "nope"))
    with pytest.raises(DatasetNotFoundError, match="Available splits: \\['test'\\]"):
        evaluation_split(load_dataset(wds_cfg, tmp_path / "cache"), wds_cfg.model_copy(update={"split": "train"}))


# --- end to end: the benchmark's shortlist path on webdataset shards -----------------------------

@pytest.mark.slow
def test_benchmark_shortlist_on_webdataset_shards(tmp_path: Path, session_cache: Path, ray_local) -> None:
    from rsretrieval.pipelines.benchmark.run import run_benchmark

    write_shard(tmp_path / "shards/00000.tar", samples("e", 7, size=64))
    write_shard(tmp_path / "shards/00001.tar", samples("f", 6, seed=50, size=64) + [("f9.txt", b"no image")])
    overrides = [
        f"output_dir={tmp_path / 'runs'}", f"cache_dir={session_cache}", "run_name=rs5m-e2e",
        f"datasets=[{{name: rs5m, format: webdataset, annotations: '{tmp_path / 'shards'}'}}]",
        "backbones=[{name: rs-tiny, rs_tiny: {epochs: 1, batch_size: 32, crops: false, "
        "train_data: {seed: 0, n_train: 256, n_val: 16, n_test: 48}}}]",
        "modes=[v2v, s2s]", "image_scenes.methods=[uniform]", "eval.shortlist_k=10", "eval.bootstrap_resamples=50",
        "mlflow.enabled=false", "report.enabled=false", "graph_matching.train.enabled=false",
    ]
    result = run_benchmark(load_config(QUICK_CONFIG, overrides))
    import pandas as pd

    df = pd.read_csv(result.results_csv)
    assert set(df["mode"]) == {"v2v", "s2s"} and (df["dataset"] == "rs5m").all() and len(df) == len(result.rows) >= 2
    assert (df["shortlist_k"] == 10).all()
    assert df[df["mode"] == "s2s"]["notes"].str.contains("reranked V2V top-10").all()
    md = result.results_md.read_text(encoding="utf-8")
    assert "rs5m: 1 samples/rows left out while reading (1 no_image" in md
    assert ",f9.txt,no_image," in (result.run_dir / "skipped-rs5m.csv").read_text()
