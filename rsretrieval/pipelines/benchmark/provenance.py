"""The reproducibility record of a run: what code, which packages, which data and which weights.

Written as ``provenance.json`` in the run folder and logged to MLflow (the JSON as an artifact, the
small values as tags), so a number in a table can be traced to the exact inputs that produced it:

* ``config``: the fully resolved config (also in ``config.yaml``).
* ``git``: commit, branch and whether the checkout had uncommitted changes to tracked files (a dirty
  tree means the commit alone does not reproduce the run); ``null`` fields outside a git checkout.
* ``packages``: versions of the packages that change numbers (torch, open_clip, ...), Python, platform.
* ``datasets``: per dataset, the SHA-256 of its annotation files (or of synthrs' generated tables and
  manifest) and the content fingerprint of the evaluated split; ``checkpoints``: SHA-256 of every
  weight file used (backbones, SAM 2, GMN, the graph models trained in the run).

Hashing big files costs seconds per GB, so files are read in chunks and their digests are cached in a
JSON file keyed by (path, size, mtime): a rerun hashes only what changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

KEY_PACKAGES = ("rsretrieval", "torch", "torchvision", "open_clip_torch", "numpy", "scipy", "pandas", "pyarrow",
                "pydantic", "ray", "mlflow", "Pillow", "scikit-image", "sentence-transformers", "torch_geometric",
                "faiss-cpu", "sam2", "google-genai")
CHUNK = 1 << 20


class HashCache:
    """SHA-256 of files, cached by (resolved path, size, mtime_ns); persisted to ``path`` when given."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else None
        self.entries: dict[str, dict[str, Any]] = {}
        if self.path and self.path.is_file():
            try:
                self.entries = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                log.warning("hash cache %s unreadable: starting empty", self.path)
        self.computed = 0  # files actually read (the rest came from the cache)

    def sha256(self, file: Path) -> str:
        file = Path(file).resolve()
        st = file.stat()
        key = str(file)
        hit = self.entries.get(key)
        if hit and hit["size"] == st.st_size and hit["mtime_ns"] == st.st_mtime_ns:
            return hit["sha256"]
        h = hashlib.sha256()
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(CHUNK), b""):
                h.update(block)
        self.computed += 1
        self.entries[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": h.hexdigest()}
        return h.hexdigest()

    def describe(self, path: Path | None) -> dict[str, Any] | None:
        """{path, bytes, sha256} of a file; of a folder, its files' digests combined in path order."""
        if path is None:
            return None
        path = Path(path)
        if path.is_file():
            return {"path": str(path), "bytes": path.stat().st_size, "sha256": self.sha256(path)}
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            h = hashlib.sha256()
            for p in files:
                h.update(f"{p.relative_to(path).as_posix()}\0{self.sha256(p)}\n".encode())
            return {"path": str(path), "files": len(files), "bytes": sum(p.stat().st_size for p in files),
                    "sha256": h.hexdigest()}
        return {"path": str(path), "missing": True}

    def save(self) -> None:
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.entries, indent=1, sort_keys=True), encoding="utf-8")
            tmp.replace(self.path)


def git_info(repo: Path | None = None) -> dict[str, Any]:
    """Commit, branch and dirty flag of the checkout holding ``repo`` (default: this package's folder)."""
    repo = Path(repo) if repo else Path(__file__).resolve().parents[2]

    def git(*args: str) -> str | None:
        try:
            res = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return res.stdout.strip() if res.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "branch": None, "dirty": None, "note": f"{repo} is not a git checkout (or no git)"}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
            "dirty": bool(status) if status is not None else None}


def package_versions(names: tuple[str, ...] = KEY_PACKAGES) -> dict[str, str | None]:
    """Installed version of each package (None when not installed), plus Python and the platform."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["python"] = sys.version.split()[0]
    out["platform"] = platform.platform()
    return out


def dataset_files(dcfg: Any, cache_dir: Path) -> list[Path | None]:
    """The files that define a dataset: its annotations (and leak manifest), or synthrs' generated tables."""
    if dcfg.format == "synthrs":
        from rsretrieval.data.registry import synthrs_dir

        d = synthrs_dir(dcfg.synthrs, cache_dir)
        return sorted(d.glob("*.parquet")) + [d / "manifest.json"]
    if dcfg.format == "webdataset" and dcfg.annotations is not None:  # a pattern names its shards
        from rsretrieval.data.webdataset import find_shards

        return list(find_shards(dcfg.annotations)[0])
    return [dcfg.annotations]


def run_checkpoints(cfg: Any, run_dir: Path) -> dict[str, Path | None]:
    """Weight files of a benchmark run: every backbone's (rs-tiny: the cached trained file) and the graph
    models trained in the run."""
    from rsretrieval.pipelines.runtime.checkpoints import resolve_checkpoint

    out: dict[str, Path | None] = {b.name: resolve_checkpoint(b, cfg) for b in cfg.backbones}
    out.update({f"graph_models/{p.name}": p for p in sorted((Path(run_dir) / "graph_models").glob("*.pt"))})
    return out


def build_record(cfg: Any, checkpoints: dict[str, Path | None] | None = None,
                 fingerprints: dict[str, str] | None = None, hashes: HashCache | None = None) -> dict[str, Any]:
    """The full record of a benchmark config (``checkpoints``: label -> weight file; ``fingerprints``:
    dataset -> content hash of the evaluated split)."""
    hashes = hashes or HashCache()
    t0 = time.perf_counter()
    datasets = {}
    for d in cfg.datasets:
        datasets[d.name] = {"format": d.format, "split": d.split, "limit_images": d.limit_images,
                            "files": [hashes.describe(p) for p in dataset_files(d, cfg.cache_dir) if p is not None],
                            "fingerprint": (fingerprints or {}).get(d.name)}
    if cfg.eval.exclude_leaked is not None:
        datasets["_exclude_leaked"] = {"files": [hashes.describe(cfg.eval.exclude_leaked)]}
    ckpts = {label: hashes.describe(p) for label, p in (checkpoints or {}).items()}
    for label, p in (("sam2", cfg.image_scenes.regions.sam2_checkpoint), ("gmn", cfg.graph_matching.gmn_checkpoint)):
        if p is not None:
            ckpts[label] = hashes.describe(p)
    hashes.save()
    return {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "run_name": cfg.run_name,
            "config": cfg.model_dump(mode="json"), "git": git_info(), "packages": package_versions(),
            "datasets": datasets, "checkpoints": ckpts, "hash_seconds": round(time.perf_counter() - t0, 3),
            "files_hashed": hashes.computed}


def tags(record: dict[str, Any]) -> dict[str, str]:
    """The small part of the record as MLflow tags."""
    out = {"git.commit": str(record["git"]["commit"]), "git.dirty": str(record["git"]["dirty"])}
    out.update({f"pkg.{k}": str(v) for k, v in record["packages"].items() if v is not None and k != "platform"})
    for name, d in record["datasets"].items():
        for i, f in enumerate(d.get("files", [])):
            if f and f.get("sha256"):
                out[f"data.{name}.{i}.sha256"] = f["sha256"][:16]
    out.update({f"ckpt.{k}.sha256": v["sha256"][:16] for k, v in record["checkpoints"].items() if v and v.get("sha256")})
    return out


def write_provenance(record: dict[str, Any], run_dir: Path, tracker: Any | None = None) -> Path:
    """provenance.json in the run folder; logged to MLflow as artifact + tags when a tracker is given."""
    path = Path(run_dir) / "provenance.json"
    path.write_text(json.dumps(record, indent=2, sort_keys=False, default=str), encoding="utf-8")
    if tracker is not None:
        tracker.set_tags(tags(record))
        tracker.log_artifact(path)
    return path
