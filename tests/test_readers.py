"""Dataset readers on real format excerpts (tests/data) and on broken inputs."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest

from rsretrieval.data.custom import read_custom
from rsretrieval.data.errors import DatasetFormatError, DatasetNotFoundError
from rsretrieval.data.harma import read_harma
from rsretrieval.data.karpathy import read_karpathy
from rsretrieval.data.nwpu import read_nwpu
from rsretrieval.data.precomp import read_precomp
from rsretrieval.data.schema import CAPTIONS_SCHEMA, IMAGES_SCHEMA, RSDataset, normalise_caption

DATA = Path(__file__).resolve().parent / "data"
UCM = DATA / "ucm"
FORMATS = DATA / "formats"
NWPU = DATA / "nwpu"
SHARED_UCM = Path("/work/shared/data/ucm_sample")


def _check_tables(ds: RSDataset) -> None:
    """Schemas exact, ids unique, every caption points to an image of the same split."""
    assert ds.images.schema.equals(IMAGES_SCHEMA)
    assert ds.captions.schema.equals(CAPTIONS_SCHEMA)
    ids = ds.images["image_id"].to_pylist()
    assert len(ids) == len(set(ids))
    cids = ds.captions["caption_id"].to_pylist()
    assert len(cids) == len(set(cids))
    split_of = dict(zip(ids, ds.images["split"].to_pylist()))
    for iid, split in zip(ds.captions["image_id"].to_pylist(), ds.captions["split"].to_pylist()):
        assert split_of[iid] == split
    assert all(os.path.isabs(u) for u in ds.images["uri"].to_pylist())
    assert set(ds.captions["variant"].to_pylist()) <= {"original", "fine_grained"}


def _expected_duplicates(texts_by_id: list[tuple[str, str]]) -> dict[str, int]:
    """Normalised text -> count, for texts occurring more than once."""
    counts = Counter(normalise_caption(t) for _, t in texts_by_id)
    return {t: n for t, n in counts.items() if n > 1}


def _touch_images(ds: RSDataset) -> None:
    for uri in ds.images["uri"].to_pylist():
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        Path(uri).touch()


# --- Karpathy ---------------------------------------------------------------------------------

def test_karpathy_ucm_fixture() -> None:
    raw = json.loads((UCM / "dataset.json").read_text(encoding="utf-8"))
    ds = read_karpathy(UCM / "dataset.json", UCM)
    _check_tables(ds)
    assert ds.name == "ucm"
    assert ds.images.num_rows == len(raw["images"]) == 21
    assert ds.captions.num_rows == sum(len(i["sentences"]) for i in raw["images"]) == 105
    assert set(ds.images["split"].to_pylist()) == {"test"}
    assert ds.images["image_id"].to_pylist() == [f"ucm:{i['filename']}" for i in raw["images"]]
    assert ds.images["uri"].to_pylist()[0] == str((UCM / raw["images"][0]["filename"]).resolve())
    assert ds.images["scene_label"].null_count == 21  # UCM file names carry no class
    first = raw["images"][0]["sentences"][0]
    assert ds.captions["caption_id"][0].as_py() == f"ucm:{first['sentid']}"
    assert ds.captions["text"][0].as_py() == first["raw"].strip()
    # duplicates: reported, never merged
    expected = _expected_duplicates([(str(s["sentid"]), s["raw"]) for i in raw["images"] for s in i["sentences"]])
    assert expected, "the fixture is expected to hold duplicate caption texts"
    found = {d.text: len(d.caption_ids) for d in ds.report.duplicate_captions}
    assert found == expected
    assert ds.report.source == str(UCM / "dataset.json")
    assert ds.report.warnings == []


@pytest.mark.skipif(not (SHARED_UCM / "dataset.json").is_file(),
                    reason=f"shared UCM sample not available at {SHARED_UCM}")
def test_karpathy_full_shared_ucm_sample() -> None:
    ds = read_karpathy(SHARED_UCM / "dataset.json", SHARED_UCM)
    _check_tables(ds)
    assert (ds.images.num_rows, ds.captions.num_rows) == (105, 525)
    assert Counter(ds.images["split"].to_pylist()) == {"train": 63, "val": 21, "test": 21}
    assert Counter(ds.captions["split"].to_pylist()) == {"train": 315, "val": 105, "test": 105}
    assert ds.split("val").images.num_rows == 21
    assert any(d.cross_image for d in ds.report.duplicate_captions)  # "There is a piece of farmland ." ...


def test_karpathy_sydney_modified_excerpt() -> None:
    path = FORMATS / "sydney_modified" / "dataset_sydney_modified.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    ds = read_karpathy(path, FORMATS, verify_images=False)
    _check_tables(ds)
    assert ds.name == "sydney"
    assert ds.images.num_rows == 20 and ds.captions.num_rows == 100
    assert ds.images["image_id"][19].as_py() == "sydney:20.tif"
    assert ds.captions["caption_id"][99].as_py() == "sydney:99"
    assert ds.captions.num_rows == sum(len(i["sentences"]) for i in raw["images"])


def test_karpathy_restval_and_class_prefix(tmp_path: Path) -> None:
    doc = {"images": [
        {"filename": "airport_1.jpg", "imgid": 0, "split": "restval", "sentids": [0],
         "sentences": [{"tokens": ["a"], "raw": " An airport . ", "imgid": 0, "sentid": 0}]},
        {"filename": "00017.jpg", "imgid": 1, "split": "restval",
         "sentences": [{"raw": "A beach .", "imgid": 1}, {"raw": "a beach", "imgid": 1}]},
    ], "dataset": "RSICD"}
    (tmp_path / "dataset_rsicd.json").write_text(json.dumps(doc))
    ds = read_karpathy(tmp_path / "dataset_rsicd.json", tmp_path, verify_images=False)
    assert ds.name == "rsicd"
    assert ds.images["split"].to_pylist() == ["train", "train"]
    assert ds.images["scene_label"].to_pylist() == ["airport", None]
    assert ds.captions["text"][0].as_py() == "An airport ."
    assert ds.captions["caption_id"].to_pylist() == ["rsicd:0", "rsicd:00017.jpg#0", "rsicd:00017.jpg#1"]
    assert len(ds.report.warnings) == 1 and "restval" in ds.report.warnings[0]
    assert ds.captions.num_rows == 3 and len(ds.report.duplicate_captions) == 1


def _write_karpathy(tmp_path: Path, images: list) -> Path:
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"images": images, "dataset": "UCM"}), encoding="utf-8")
    return path


def _img(filename: str = "1.tif", split: str = "test", sentences: list | None = None) -> dict:
    return {"filename": filename, "split": split,
            "sentences": sentences if sentences is not None else [{"raw": "A field .", "sentid": 0}]}


@pytest.mark.parametrize(
    "images, entry, problem",
    [
        ([_img(), _img("2.tif", sentences=[{"tokens": ["x"], "sentid": 1}])], "images[1].sentences[0] (2.tif)", "raw"),
        ([_img(sentences=[{"raw": "   ", "sentid": 0}])], "images[0].sentences[0] (1.tif)", "empty caption"),
        ([_img(sentences=[{"raw": 12, "sentid": 0}])], "images[0].sentences[0] (1.tif)", "must be a string"),
        ([_img(), _img("2.tif", split="dev")], "images[1] (2.tif)", "unknown split 'dev'"),
        ([_img(), _img("1.tif")], "images[1] (1.tif)", "already used"),
        ([_img(), _img("2.tif")], "images[1].sentences[0] (2.tif)", "ucm:0"),  # repeated sentid
        ([_img(), _img("2.tif", sentences=[])], "images[1] (2.tif)", "sentences"),
    ],
)
def test_karpathy_format_errors(tmp_path: Path, images: list, entry: str, problem: str) -> None:
    path = _write_karpathy(tmp_path, images)
    with pytest.raises(DatasetFormatError) as e:
        read_karpathy(path, tmp_path, verify_images=False)
    assert str(path) in str(e.value) and entry in str(e.value) and problem in str(e.value)
    assert e.value.entry == entry


def test_karpathy_non_utf8_and_bad_json(tmp_path: Path) -> None:
    path = tmp_path / "dataset.json"
    data = b'{"images": [\n{"filename": "1.tif",\n "split": "caf\xe9"}]}'
    path.write_bytes(data)
    with pytest.raises(DatasetFormatError, match=rf"entry line 3: not valid UTF-8 at byte offset {data.index(0xE9)}"):
        read_karpathy(path, tmp_path, verify_images=False)
    path.write_text('{"images": [\n  {"filename": "1.tif",}\n]}')
    with pytest.raises(DatasetFormatError, match=r"dataset.json, entry line 2 column"):
        read_karpathy(path, tmp_path, verify_images=False)


def test_karpathy_not_found(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="annotation file not found at .*nope.json.*dataset_rsicd.json"):
        read_karpathy(tmp_path / "nope.json", tmp_path)
    with pytest.raises(DatasetNotFoundError, match=r"Image folder not found at .*imgs"):
        read_karpathy(UCM / "dataset.json", tmp_path / "imgs")


def test_verify_images_lists_missing(tmp_path: Path) -> None:
    shutil.copy(UCM / "dataset.json", tmp_path / "dataset.json")
    for name in ("81.tif", "191.tif"):
        shutil.copy(UCM / name, tmp_path / name)
    with pytest.raises(DatasetNotFoundError) as e:
        read_karpathy(tmp_path / "dataset.json", tmp_path)
    msg = str(e.value)
    assert "19 of 21 image files" in msg and str(tmp_path / "291.tif") in msg and "..." in msg
    assert str(tmp_path / "81.tif") not in msg
    assert read_karpathy(tmp_path / "dataset.json", tmp_path, verify_images=False).images.num_rows == 21


# --- NWPU -------------------------------------------------------------------------------------

def test_nwpu_fixture_class_folders(tmp_path: Path) -> None:
    raw = json.loads((NWPU / "dataset_nwpu.json").read_text(encoding="utf-8"))
    with pytest.raises(DatasetNotFoundError, match="5 of 5 image files"):
        read_nwpu(NWPU / "dataset_nwpu.json", tmp_path)
    for cls, items in raw.items():  # NWPU-RESISC45 layout for two classes, flat for "beach"
        for item in items:
            folder = tmp_path if cls == "beach" else tmp_path / cls
            folder.mkdir(exist_ok=True)
            (folder / item["filename"]).touch()
    ds = read_nwpu(NWPU / "dataset_nwpu.json", tmp_path)
    _check_tables(ds)
    assert ds.name == "nwpu" and ds.images.num_rows == 5 and ds.captions.num_rows == 25
    assert ds.images["scene_label"].to_pylist() == ["airplane", "airplane", "baseball_diamond", "baseball_diamond", "beach"]
    assert ds.images["uri"][0].as_py() == str(tmp_path / "airplane" / "airplane_001.jpg")
    assert ds.images["uri"][4].as_py() == str(tmp_path / "beach_001.jpg")
    assert Counter(ds.images["split"].to_pylist()) == {"train": 2, "test": 2, "val": 1}
    assert ds.captions["caption_id"].to_pylist()[:2] == ["nwpu:0", "nwpu:1"]
    assert ds.captions["text"][1].as_py() == raw["airplane"][0]["raw_1"]
    dups = ds.report.duplicate_captions
    assert len(dups) == 1 and dups[0].image_ids == ["nwpu:baseball_diamond_002.jpg"] and len(dups[0].caption_ids) == 2


def test_nwpu_tolerant_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "dataset_nwpu.json"
    path.write_text(json.dumps({"forest": [{"filename": "forest_1.jpg", "split": "test", "raw_2": "B .", "raw": "A ."}]}))
    ds = read_nwpu(path, tmp_path, verify_images=False)
    assert ds.captions["text"].to_pylist() == ["A .", "B ."]
    assert ds.captions["caption_id"].to_pylist() == ["nwpu:forest_1.jpg#0", "nwpu:forest_1.jpg#2"]
    path.write_text(json.dumps({"forest": [{"filename": "forest_1.jpg", "split": "test", "raw": "A .", "raw_1": ""}]}))
    with pytest.raises(DatasetFormatError, match=r'dataset_nwpu.json, entry "forest"\[0\] \(forest_1.jpg\)."raw_1": empty'):
        read_nwpu(path, tmp_path, verify_images=False)
    path.write_text(json.dumps({"forest": [{"filename": "forest_1.jpg", "split": "test", "sentids": 3}]}))
    with pytest.raises(DatasetFormatError, match=r'"forest"\[0\] \(forest_1.jpg\): no caption'):
        read_nwpu(path, tmp_path, verify_images=False)
    with pytest.raises(DatasetNotFoundError, match="dataset_nwpu.json"):
        read_nwpu(tmp_path / "missing.json", tmp_path)


# --- precomp ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["ucm", "sydney", "rsicd", "rsitmd"])
def test_precomp_test_excerpts(tmp_path: Path, name: str) -> None:
    root = FORMATS / f"amfmn_{name}_precomp"
    caps = (root / "test_caps.txt").read_text(encoding="utf-8").splitlines()
    names = (root / "test_filename.txt").read_text(encoding="utf-8").splitlines()
    ds = read_precomp(root, tmp_path, dataset=name, splits=("test",), verify_images=False)
    _check_tables(ds)
    assert ds.captions.num_rows == len(caps) == 100
    assert ds.images["image_id"].to_pylist() == [f"{name}:{n}" for n in dict.fromkeys(names)]
    assert ds.captions["text"].to_pylist() == [c.strip() for c in caps]
    assert ds.captions["caption_id"][6].as_py() == f"{name}:{names[6]}#1"
    found = {d.text: len(d.caption_ids) for d in ds.report.duplicate_captions}
    assert found == _expected_duplicates([("", c) for c in caps])
    labels = ds.images["scene_label"].to_pylist()
    assert (labels[0] is None) if name in ("ucm", "sydney") else labels[0] == names[0].split("_")[0]


def test_precomp_rsitmd_blocks_and_verify(tmp_path: Path) -> None:
    root = FORMATS / "amfmn_rsitmd_precomp"
    with pytest.raises(DatasetNotFoundError, match=r"40 of 40 image files .*baseballfield_452.tif"):
        read_precomp(root, tmp_path, dataset="rsitmd")
    ds = read_precomp(root, tmp_path, dataset="rsitmd", verify_images=False)
    _touch_images(ds)
    ds = read_precomp(root, tmp_path, dataset="rsitmd")
    assert Counter(ds.images["split"].to_pylist()) == {"train": 20, "test": 20}
    train = ds.split("train")
    assert train.captions.num_rows == 100
    caps = (root / "train_caps.txt").read_text(encoding="utf-8").splitlines()
    second = [t for i, t in zip(train.captions["image_id"].to_pylist(), train.captions["text"].to_pylist())
              if i == "rsitmd:baseballfield_453.tif"]
    assert second == [c.strip() for c in caps[5:10]]
    assert any("'val' skipped" in w for w in ds.report.warnings)


def test_precomp_errors(tmp_path: Path) -> None:
    (tmp_path / "test_caps.txt").write_text("a .\nb .\nc .\n")
    (tmp_path / "test_filename.txt").write_text("1.tif\n2.tif\n")
    with pytest.raises(DatasetFormatError) as e:
        read_precomp(tmp_path, tmp_path, dataset="x", verify_images=False)
    msg = str(e.value)
    assert "test_caps.txt" in msg and "test_filename.txt" in msg and "3 caption lines" in msg and "2 file names" in msg
    (tmp_path / "test_caps.txt").write_text("a .\r\n\r\nc .\r\n")
    (tmp_path / "test_filename.txt").write_text("1.tif\n1.tif\n2.tif\n")
    with pytest.raises(DatasetFormatError, match=r"test_caps.txt, entry line 2: empty caption"):
        read_precomp(tmp_path, tmp_path, dataset="x", verify_images=False)
    (tmp_path / "test_caps.txt").write_bytes(b"a .\nb \xff.\nc .\n")
    with pytest.raises(DatasetFormatError, match=r"test_caps.txt, entry line 2: not valid UTF-8 at byte offset 6"):
        read_precomp(tmp_path, tmp_path, dataset="x", verify_images=False)
    (tmp_path / "test_filename.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match="test_filename.txt"):
        read_precomp(tmp_path, tmp_path, dataset="x", verify_images=False)
    (tmp_path / "test_caps.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"precomp files for splits \['train', 'val', 'test'\]"):
        read_precomp(tmp_path, tmp_path, dataset="x", verify_images=False)


# --- custom -----------------------------------------------------------------------------------

def test_custom_csv_and_jsonl(tmp_path: Path) -> None:
    (tmp_path / "img" / "harbor").mkdir(parents=True)
    for f in ("harbor/1.png", "2.png"):
        (tmp_path / "img" / f).touch()
    csv_path = tmp_path / "caps.csv"
    csv_path.write_text(
        "image,caption,split,scene_label,variant\n"
        "harbor/1.png,Boats in a harbor .,train,harbor,\n"
        'harbor/1.png,"Boats, moored in a harbor .",train,harbor,fine_grained\n'
        "2.png,A field .,,,\n"
        "2.png,a field,,,\n",
        encoding="utf-8",
    )
    ds = read_custom(csv_path, tmp_path / "img")
    _check_tables(ds)
    assert ds.images["image_id"].to_pylist() == ["custom:harbor/1.png", "custom:2.png"]
    assert ds.images["split"].to_pylist() == ["train", "test"]
    assert ds.images["scene_label"].to_pylist() == ["harbor", None]
    assert ds.captions["variant"].to_pylist() == ["original", "fine_grained", "original", "original"]
    assert ds.captions["caption_id"].to_pylist()[2:] == ["custom:2.png#0", "custom:2.png#1"]
    assert ds.captions.num_rows == 4 and len(ds.report.duplicate_captions) == 1
    jsonl = tmp_path / "caps.jsonl"
    jsonl.write_text(
        '{"image": "2.png", "caption": "A field ."}\n\n{"image": "harbor/1.png", "caption": "Boats .", "split": "val"}\n'
    )
    ds = read_custom(jsonl, tmp_path / "img", dataset="mine")
    assert ds.images["image_id"].to_pylist() == ["mine:2.png", "mine:harbor/1.png"]
    assert ds.images["split"].to_pylist() == ["test", "val"]


@pytest.mark.parametrize(
    "suffix, content, pattern",
    [
        (".csv", "image,text\n1.png,a\n", r"caps.csv, entry header \(line 1\): missing column\(s\) \['caption'\]"),
        (".csv", "image,caption\n1.png,a\n1.png,  \n", r"caps.csv, entry row 2 \(line 3\): empty caption"),
        (".csv", "image,caption,split\n1.png,a,dev\n", r"caps.csv, entry row 1 \(line 2\): unknown split 'dev'"),
        (".csv", "image,caption,variant\n1.png,a,short\n", r"entry row 1 \(line 2\): unknown variant 'short'"),
        (".csv", "image,caption,split\n1.png,a,test\n1.png,b,train\n", r"row 2 \(line 3\): split 'train' .* row 1"),
        (".jsonl", '{"image": "1.png", "caption": "a"}\n{"image": "1.png"}\n', r"caps.jsonl, entry line 2: missing key"),
        (".jsonl", '{"image": "1.png", "caption": ["a"]}\n', r"caps.jsonl, entry line 1: caption must be a string"),
        (".jsonl", '{"image": "1.png", "caption": "a"}\n{oops\n', r"caps.jsonl, entry line 2: invalid JSON"),
        (".txt", "x", r"caps.txt: unknown file type"),
    ],
)
def test_custom_errors(tmp_path: Path, suffix: str, content: str, pattern: str) -> None:
    path = tmp_path / f"caps{suffix}"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=pattern):
        read_custom(path, tmp_path, verify_images=False)


def test_custom_non_utf8_and_missing_image(tmp_path: Path) -> None:
    path = tmp_path / "caps.csv"
    path.write_bytes(b"image,caption\n1.png,caf\xe9\n")
    with pytest.raises(DatasetFormatError, match=r"caps.csv, entry line 2: not valid UTF-8 at byte offset 23"):
        read_custom(path, tmp_path)
    path.write_text("image,caption\n1.png,a\n")
    with pytest.raises(DatasetNotFoundError, match=r"1 of 1 image files .*1.png"):
        read_custom(path, tmp_path)


# --- HarMA ------------------------------------------------------------------------------------

def test_harma_rsitmd_folder(tmp_path: Path) -> None:
    folder = FORMATS / "harma_rsitmd"
    raw = {s: json.loads((folder / f"rsitmd_{s}.json").read_text(encoding="utf-8")) for s in ("train", "val", "test")}
    ds = read_harma(folder, tmp_path, verify_images=False)
    _touch_images(ds)
    ds = read_harma(folder, tmp_path)
    _check_tables(ds)
    assert ds.name == "rsitmd"
    n_caps = len(raw["train"]) + sum(len(i["caption"]) for s in ("val", "test") for i in raw[s])
    assert ds.captions.num_rows == n_caps
    assert Counter(ds.images["split"].to_pylist()) == {
        "train": len({i["image"] for i in raw["train"]}), "val": 20, "test": 20}
    assert ds.images["image_id"][0].as_py() == f"rsitmd:{raw['train'][0]['image']}"
    assert ds.images["uri"][0].as_py() == str(tmp_path / raw["train"][0]["image"])
    labels = dict(zip(ds.images["image_id"].to_pylist(), ds.images["scene_label"].to_pylist()))
    assert labels["rsitmd:train/bridge_942.tif"] == "bridge" and labels[f"rsitmd:{raw['test'][0]['image']}"] is None


def test_harma_rsicd_test_duplicates_kept() -> None:
    path = FORMATS / "harma_rsicd" / "rsicd_test.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    ds = read_harma(path, FORMATS, verify_images=False)
    assert ds.name == "rsicd" and set(ds.images["split"].to_pylist()) == {"test"}
    texts = [c for i in raw for c in i["caption"]]
    assert ds.captions.num_rows == len(texts) == 100
    found = {d.text: len(d.caption_ids) for d in ds.report.duplicate_captions}
    assert found == _expected_duplicates([("", t) for t in texts]) and found


def test_harma_errors(tmp_path: Path) -> None:
    path = tmp_path / "x_val.json"
    path.write_text(json.dumps([{"image": "val/a.tif", "caption": ["ok", ""]}]))
    with pytest.raises(DatasetFormatError, match=r"x_val.json, entry \[0\] \(val/a.tif\).caption\[1\]: empty caption"):
        read_harma(path, tmp_path, verify_images=False)
    bad = tmp_path / "x.json"
    bad.write_text("[]")
    with pytest.raises(DatasetFormatError, match="_train.json, _val.json or _test.json"):
        read_harma(bad, tmp_path)
