"""Issue 9, scenario 5: bad input gives a clear error or a quarantined row whose count reconciles.

* corrupt / truncated / non-image files: quarantined (``verify_images: decode``, the default) with their
  captions, listed in ``quarantine-<dataset>.csv`` and a results footnote; good rows lost: 0. Without the
  check, the stage that meets the file fails naming it.
* empty, whitespace-only or non-string captions, malformed or non-UTF-8 JSON: DatasetFormatError naming
  file and entry (a caption is the query: dropping it silently would change the benchmark).
* empty scene / text graphs: score like any graph (finite, never NaN), in Hungarian, GMN and VG2VG.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from rsretrieval.data.errors import DatasetFormatError, ImageDecodeError

GOOD, BAD = 12, 3  # images of the test dataset; every image has two captions


def _write_images(root: Path) -> tuple[list[str], list[str]]:
    """GOOD decodable PNGs and BAD broken files (truncated JPEG, truncated PNG, text named .png)."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    good = []
    for i in range(GOOD):
        name = f"good_{i}.png"
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(root / name)
        good.append(name)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(root / "whole.jpg")
    data = (root / "whole.jpg").read_bytes()
    (root / "bad_truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "whole.jpg").unlink()
    png = (root / good[0]).read_bytes()
    (root / "bad_truncated.png").write_bytes(png[: len(png) - 200])
    (root / "bad_not_an_image.png").write_text("this is not an image")
    return good, ["bad_truncated.jpg", "bad_truncated.png", "bad_not_an_image.png"]


@pytest.fixture()
def broken_dataset(tmp_path: Path) -> tuple[Path, Path, list[str], list[str]]:
    """A custom-format dataset (CSV) with GOOD good and BAD undecodable images, two captions each."""
    good, bad = _write_images(tmp_path / "img")
    lines = ["image,caption"]
    for k, name in enumerate(good + bad):
        lines += [f"{name},scene number {k} with a red roof .", f"{name},another view of place {k} ."]
    csv = tmp_path / "caps.csv"
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return csv, tmp_path / "img", good, bad


def test_corrupt_images_are_quarantined_and_counts_reconcile(broken_dataset, tmp_path: Path) -> None:
    from rsretrieval.config import DatasetConfig
    from rsretrieval.data.quarantine import quarantine_images
    from rsretrieval.data.registry import evaluation_split, load_dataset

    csv, root, good, bad = broken_dataset
    ds = evaluation_split(load_dataset(DatasetConfig(name="mine", format="custom", annotations=csv, image_root=root),
                                       tmp_path), DatasetConfig(name="mine", format="custom"))
    result = quarantine_images(ds, threads=2)
    rows = result.rows.to_pylist()
    print(f"\nbad input: {result.images_in} images in = {result.dataset.images.num_rows} kept + {len(rows)} "
          f"quarantined; {result.captions_in} captions in = {result.dataset.captions.num_rows} kept + "
          f"{result.captions_dropped} dropped with their image")
    assert result.images_in == result.dataset.images.num_rows + len(rows) == GOOD + BAD
    assert result.dataset.images["image_id"].to_pylist() == [f"mine:{n}" for n in good]  # good rows lost: 0
    assert result.captions_in == result.dataset.captions.num_rows + result.captions_dropped == 2 * (GOOD + BAD)
    assert result.captions_dropped == sum(r["captions_dropped"] for r in rows) == 2 * BAD
    assert {r["image_id"] for r in rows} == {f"mine:{n}" for n in bad}
    assert all(r["stage"] == "decode" and r["uri"].endswith(r["image_id"][5:]) and r["error"] for r in rows)
    assert set(result.dataset.captions["image_id"].to_pylist()) == {f"mine:{n}" for n in good}
    assert result.note() == (f"mine: {BAD} of {GOOD + BAD} images quarantined (file cannot be decoded; "
                             f"quarantine-mine.csv) and their {2 * BAD} captions left out")
    written = pd.read_csv(result.write(tmp_path))
    assert list(written.columns) == ["dataset", "image_id", "uri", "stage", "error", "captions_dropped"]
    assert len(written) == BAD


def test_clean_dataset_is_left_as_is(broken_dataset) -> None:
    from rsretrieval.data.custom import read_custom
    from rsretrieval.data.quarantine import quarantine_images

    csv, root, good, bad = broken_dataset
    for name in bad:
        (root / name).unlink()
    csv.write_text("\n".join(ln for ln in csv.read_text().splitlines() if not ln.startswith("bad_")) + "\n")
    ds = read_custom(csv, root)
    result = quarantine_images(ds)
    assert result.dataset is ds and result.rows.num_rows == 0 and result.note() is None


def test_all_images_undecodable_is_an_error_not_an_empty_benchmark(tmp_path: Path) -> None:
    from rsretrieval.data.custom import read_custom
    from rsretrieval.data.quarantine import quarantine_images

    (tmp_path / "a.png").write_text("x")
    (tmp_path / "caps.csv").write_text("image,caption\na.png,a field .\n")
    with pytest.raises(DatasetFormatError, match=r"a.png: none of the 1 images of dataset 'custom' can be decoded"):
        quarantine_images(read_custom(tmp_path / "caps.csv", tmp_path))


def test_quarantine_drops_graphs_of_dropped_images_and_captions(broken_dataset) -> None:
    from rsretrieval.data.custom import read_custom
    from rsretrieval.data.quarantine import quarantine_images
    from rsretrieval.data.schema import RSDataset, graphs_table

    csv, root, good, bad = broken_dataset
    ds = read_custom(csv, root)
    owners = ds.images["image_id"].to_pylist() + ds.captions["caption_id"].to_pylist()
    graphs = graphs_table([{"owner_id": o, "kind": "k", "graph": "{}", "generator": "g"} for o in owners])
    result = quarantine_images(RSDataset(ds.name, ds.images, ds.captions, graphs))
    kept = set(result.dataset.images["image_id"].to_pylist()) | set(result.dataset.captions["caption_id"].to_pylist())
    assert set(result.dataset.graphs["owner_id"].to_pylist()) == kept and len(kept) == GOOD * 3


@pytest.mark.parametrize("name", ["bad_truncated.jpg", "bad_truncated.png", "bad_not_an_image.png"])
def test_embed_stage_names_the_undecodable_file(broken_dataset, name: str) -> None:
    """Without the up-front check (verify_images: exists/off) the embedding actor fails naming the file."""
    from rsretrieval.pipelines.stages.embed import ImageEmbedStage

    _, root, _, _ = broken_dataset
    stage = ImageEmbedStage.__new__(ImageEmbedStage)  # the decode path only: no backbone to load
    stage.backbone = SimpleNamespace(preprocess=lambda im: torch.zeros(3, 8, 8))
    assert stage.load_image(str(root / "good_0.png")).shape == (3, 8, 8)
    with pytest.raises(ImageDecodeError, match=rf"{name} cannot be decoded \(image embedding\).*verify_images: decode"):
        stage.load_image(str(root / name))


def test_scene_stages_name_the_undecodable_file(broken_dataset) -> None:
    from rsretrieval.config import ImageScenesConfig
    from rsretrieval.pipelines.stages.scene_crops import SceneBoxStage, SceneCropEmbedStage

    _, root, _, _ = broken_dataset
    boxes = SceneBoxStage("uniform", ImageScenesConfig().model_dump_json())
    ok = boxes({"image_id": np.array(["g"]), "uri": np.array([str(root / "good_0.png")])})
    assert ok.num_rows == 10  # full image + 3 x 3 grid
    with pytest.raises(ImageDecodeError, match=r"bad_not_an_image.png cannot be decoded \(scene boxes\)"):
        boxes({"image_id": np.array(["b"]), "uri": np.array([str(root / "bad_not_an_image.png")])})
    crops = SceneCropEmbedStage.__new__(SceneCropEmbedStage)
    crops.backbone = SimpleNamespace(preprocess=lambda im: torch.zeros(3, 8, 8))
    batch = {"scene_id": np.array(["b#0"]), "uri": np.array([str(root / "bad_truncated.jpg")]),
             **{c: np.array([v]) for c, v in zip(("x0", "y0", "x1", "y1"), (0, 0, 32, 32))}}
    with pytest.raises(ImageDecodeError, match=r"bad_truncated.jpg cannot be decoded \(scene crop embedding\)"):
        crops(batch)


# --- captions and dataset files ----------------------------------------------------------------

def _karpathy(tmp_path: Path, raw: object) -> Path:
    doc = {"images": [{"filename": "a.png", "split": "test", "imgid": 0,
                       "sentences": [{"raw": "A field .", "sentid": 0}, {"raw": raw, "sentid": 1}]}]}
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


@pytest.mark.parametrize("raw, problem", [("", "empty caption"), ("  \t ", "empty caption"),
                                          (None, "caption must be a string, got NoneType"),
                                          (7, "caption must be a string, got int"),
                                          (["a"], "caption must be a string, got list")])
def test_bad_caption_is_an_error_naming_file_and_entry(tmp_path: Path, raw: object, problem: str) -> None:
    from rsretrieval.data.karpathy import read_karpathy

    path = _karpathy(tmp_path, raw)
    with pytest.raises(DatasetFormatError, match=r"dataset.json, entry images\[0\]\.sentences\[1\].*" + problem):
        read_karpathy(path, tmp_path, verify_images=False)


def test_malformed_and_non_utf8_json_name_the_position(tmp_path: Path) -> None:
    from rsretrieval.data.karpathy import read_karpathy

    path = tmp_path / "dataset.json"
    path.write_text('{"images": [\n  {"filename": "a.png",\n}', encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=r"dataset.json, entry line 3 column 1: invalid JSON"):
        read_karpathy(path, tmp_path, verify_images=False)
    path.write_bytes(b'{"images": [\n{"filename": "caf\xe9.png"}]}')
    with pytest.raises(DatasetFormatError, match=r"entry line 2: not valid UTF-8 at byte offset 30"):
        read_karpathy(path, tmp_path, verify_images=False)
    path.write_text('{"pictures": []}', encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=r"dataset.json"):
        read_karpathy(path, tmp_path, verify_images=False)


def test_verify_images_off_skips_the_file_check(tmp_path: Path) -> None:
    from rsretrieval.config import DatasetConfig
    from rsretrieval.data.errors import DatasetNotFoundError
    from rsretrieval.data.registry import load_dataset

    path = _karpathy(tmp_path, "A road .")  # a.png does not exist
    cfg = DatasetConfig(name="k", format="karpathy", annotations=path, image_root=tmp_path)
    with pytest.raises(DatasetNotFoundError, match=r"1 of 1 image files .*a.png"):
        load_dataset(cfg, tmp_path)
    off = cfg.model_copy(update={"verify_images": "off"})
    assert load_dataset(off, tmp_path).captions.num_rows == 2


# --- empty graphs --------------------------------------------------------------------------------

class _ZeroForEmpty:
    """An embedder that maps the empty string to a zero vector (the worst case for normalisation)."""

    dim, name = 16, "zero-for-empty"

    def encode(self, texts: list[str]) -> np.ndarray:
        from rsretrieval.graphs.embedder import HashingTextEmbedder

        out = HashingTextEmbedder(self.dim).encode(list(texts))
        out[[t == "" for t in texts]] = 0.0
        return out


@pytest.mark.parametrize("embedder", ["hashing", "zero-for-empty"])
def test_empty_graphs_score_finite_in_every_similarity(embedder: str) -> None:
    from rsretrieval.config import GMNConfig, HungarianConfig
    from rsretrieval.generation.text_graph_parser import parse_text_graph_heuristic
    from rsretrieval.graphs.elements import GraphElements, image_graph_elements, text_graph_elements
    from rsretrieval.graphs.embedder import HashingTextEmbedder
    from rsretrieval.graphs.schema import ImageSceneGraph
    from rsretrieval.graphs.tensors import embed_graphs
    from rsretrieval.matching.gmn import GraphMatchingNetwork
    from rsretrieval.matching.hungarian import HungarianScorer

    emb = HashingTextEmbedder(16) if embedder == "hashing" else _ZeroForEmpty()
    no_objects = image_graph_elements(ImageSceneGraph(scene="", object_counts={}, objects=[], relations=[]))
    empty_text = text_graph_elements(parse_text_graph_heuristic(""))
    queries = embed_graphs([empty_text, GraphElements(["forest"]), empty_text], emb)
    docs = embed_graphs([GraphElements([]), no_objects, GraphElements(["forest", "river"], [(0, 1)], ["near"])], emb)
    assert queries.n_empty == 2 and docs.n_empty >= 1
    hung = HungarianScorer(HungarianConfig()).score(queries.nodes, docs.nodes)
    cosine = np.full((3, 3), 0.5, np.float32)
    scores = {"hungarian": hung, "vg2vg-hungarian": 0.5 * cosine + 0.5 * hung}
    for use_global in (False, True):  # G2G and VG2VG; dynamic bins: one node pair has min == max
        for hist_range, soft in (("fixed", False), ("dynamic", False), ("dynamic", True)):
            gmn = GraphMatchingNetwork(GMNConfig(use_global=use_global, hist_range=hist_range, soft_binning=soft)).eval()
            with torch.no_grad():
                sim = torch.as_tensor(cosine) if use_global else None
                scores[f"gmn {use_global} {hist_range} {soft}"] = gmn.score_matrix(queries.nodes, docs.nodes, sim).numpy()
    for name, s in scores.items():
        assert s.shape == (3, 3) and np.isfinite(s).all(), (name, s)
    assert hung[1, 2] > hung[0, 2]  # a real match still beats an empty query


# --- end to end ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_benchmark_quarantines_corrupt_images_end_to_end(broken_dataset, tmp_path: Path, session_cache: Path,
                                                         ray_local) -> None:
    """A run over a dataset with undecodable files completes on the good rows (embedding and crop stages),
    writes the quarantine table and says so; with ``verify_images: exists`` the run fails naming a file."""
    from rsretrieval.config import load_config
    from rsretrieval.pipelines.benchmark.run import run_benchmark
    from tests.conftest import QUICK_CONFIG

    csv, root, good, bad = broken_dataset
    dataset = {"name": "mine", "format": "custom", "annotations": str(csv), "image_root": str(root)}
    overrides = [f"output_dir={tmp_path / 'runs'}", f"cache_dir={session_cache}", "modes=[v2v, v2s]",
                 "image_scenes.methods=[uniform]", "variants=[original]", "report.enabled=false"]
    cfg = load_config(QUICK_CONFIG, overrides + [f"datasets={json.dumps([dataset])}"])
    res = run_benchmark(cfg)
    df = pd.read_csv(res.results_csv)
    assert len(df) == 2 and (df["n_images"] == GOOD).all() and (df["n_queries"] == 2 * GOOD).all()
    quarantine = pd.read_csv(res.run_dir / "quarantine-mine.csv")
    assert sorted(quarantine["image_id"]) == sorted(f"mine:{n}" for n in bad)
    assert f"{BAD} of {GOOD + BAD} images quarantined" in res.results_md.read_text()
    import mlflow

    run = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}").get_run(res.mlflow_run_id)
    assert run.data.metrics["data.mine.quarantined_images"] == BAD
    print(f"\nend to end: {GOOD + BAD} images -> {int(df['n_images'].iloc[0])} evaluated + {len(quarantine)} "
          f"quarantined; {len(df)} cells")

    strict = load_config(QUICK_CONFIG, overrides + [f"datasets={json.dumps([{**dataset, 'verify_images': 'exists'}])}",
                                                   "run_name=strict"])
    with pytest.raises(Exception, match=r"bad_.* cannot be decoded .*verify_images: decode"):
        run_benchmark(strict)


def test_decode_checks_are_cached_until_a_file_changes(broken_dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rerun over the same files does not decode them again; a changed file is checked again."""
    import os

    from rsretrieval.data import quarantine

    csv, root, good, bad = broken_dataset
    uris = sorted(str(p) for p in root.iterdir())
    first = quarantine.decode_errors(uris, threads=2, cache_dir=tmp_path / "cache")
    assert sum(e is not None for e in first) == len(bad)
    calls = []
    monkeypatch.setattr(quarantine, "decode_error", lambda u: calls.append(u))
    assert quarantine.decode_errors(uris, threads=2, cache_dir=tmp_path / "cache") == first and calls == []
    os.utime(uris[0], ns=(1, 1))  # a file changed: the whole check runs again
    quarantine.decode_errors(uris, threads=2, cache_dir=tmp_path / "cache")
    assert len(calls) == len(uris)


def test_training_splits_are_quarantined_too(broken_dataset, tmp_path: Path) -> None:
    """Graph training and the VG2VG heads embed other splits: their bad files leave the same way."""
    from rsretrieval.config import DatasetConfig, load_config
    from rsretrieval.data.registry import load_dataset
    from rsretrieval.pipelines.benchmark.graph_training import split_dataset

    csv, root, good, bad = broken_dataset
    cfg = load_config(None, [f"cache_dir={tmp_path / 'cache'}"])
    dcfg = DatasetConfig(name="mine", format="custom", annotations=csv, image_root=root, verify_images="decode")
    sub = split_dataset(cfg, load_dataset(dcfg, tmp_path / "cache"), dcfg, "test", None)
    assert sub.name == "mine-test" and sub.images.num_rows == GOOD and sub.captions.num_rows == 2 * GOOD
    keep = split_dataset(cfg, load_dataset(dcfg, tmp_path / "cache"), dcfg.model_copy(update={"verify_images": "exists"}),
                         "test", None)
    assert keep.images.num_rows == GOOD + BAD  # 'exists' leaves them to the stage, which names the file
