"""Reproducibility record: chunked, cached file hashes; git state; package versions; the JSON + tags."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import numpy as np

from rsretrieval.config import load_config
from rsretrieval.pipelines.benchmark import provenance
from rsretrieval.pipelines.benchmark.provenance import HashCache, build_record, git_info, package_versions, write_provenance

UCM = Path(__file__).parent / "data" / "ucm"


def test_hash_cache_is_chunked_cached_and_invalidated(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(provenance, "CHUNK", 1000)  # many chunks, odd tail
    f = tmp_path / "w.bin"
    data = np.random.default_rng(0).bytes(10_500)
    f.write_bytes(data)
    cache = HashCache(tmp_path / "hashes.json")
    assert cache.sha256(f) == hashlib.sha256(data).hexdigest()
    cache.sha256(f)
    assert cache.computed == 1  # second call from the cache
    cache.save()
    again = HashCache(tmp_path / "hashes.json")
    assert again.sha256(f) == hashlib.sha256(data).hexdigest() and again.computed == 0  # persisted
    f.write_bytes(data + b"x")
    assert again.sha256(f) == hashlib.sha256(data + b"x").hexdigest() and again.computed == 1  # size changed
    st = f.stat()
    f.write_bytes(data + b"y")  # same size: the mtime tells
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert again.sha256(f) == hashlib.sha256(data + b"y").hexdigest()


def test_folder_digest_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("a")
    (tmp_path / "d" / "b.txt").write_text("b")
    cache = HashCache()
    one = cache.describe(tmp_path / "d")
    assert one["files"] == 2
    (tmp_path / "d" / "b.txt").write_text("c")
    assert cache.describe(tmp_path / "d")["sha256"] != one["sha256"]
    assert cache.describe(tmp_path / "nope")["missing"] is True


def test_git_info_inside_and_outside_a_checkout(tmp_path: Path) -> None:
    assert git_info(tmp_path)["commit"] is None  # not a checkout: no crash
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "f.txt").write_text("1")
    subprocess.run([*git, "add", "f.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    info = git_info(repo)
    assert info["commit"] == head and info["dirty"] is False
    (repo / "f.txt").write_text("2")
    assert git_info(repo)["dirty"] is True


def test_package_versions() -> None:
    v = package_versions(("numpy", "surely-not-installed-pkg"))
    assert v["numpy"] == np.__version__ and v["surely-not-installed-pkg"] is None and v["python"]


class FakeTracker:
    def __init__(self) -> None:
        self.tags: dict[str, str] = {}
        self.artifacts: list[Path] = []

    def set_tags(self, tags: dict[str, str]) -> None:
        self.tags.update(tags)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self.artifacts.append(Path(path))


def test_record_hashes_annotations_and_checkpoints(tmp_path: Path) -> None:
    cfg = load_config(None, [f"datasets=[{{name: ucm, format: karpathy, annotations: {UCM / 'dataset.json'}, "
                             f"image_root: {UCM}}}]", f"cache_dir={tmp_path / 'cache'}"])
    ckpt = tmp_path / "w.pt"
    ckpt.write_bytes(b"weights")
    rec = build_record(cfg, {"rs-tiny": ckpt}, {"ucm": "abc"})
    ann = rec["datasets"]["ucm"]["files"][0]
    assert ann["sha256"] == hashlib.sha256((UCM / "dataset.json").read_bytes()).hexdigest()
    assert rec["datasets"]["ucm"]["fingerprint"] == "abc"
    assert rec["checkpoints"]["rs-tiny"]["sha256"] == hashlib.sha256(b"weights").hexdigest()
    assert rec["config"]["datasets"][0]["name"] == "ucm" and "torch" in rec["packages"]
    tracker = FakeTracker()
    path = write_provenance(rec, tmp_path, tracker)
    assert json.loads(path.read_text())["git"] == rec["git"]
    assert tracker.artifacts == [path]
    assert tracker.tags["ckpt.rs-tiny.sha256"] == hashlib.sha256(b"weights").hexdigest()[:16]
    assert tracker.tags["data.ucm.0.sha256"] == ann["sha256"][:16] and "git.commit" in tracker.tags
