"""Tar shards streamed into a cache folder: the extraction half of the webdataset reader.

``find_shards`` turns ``annotations`` (a folder, one shard, a brace / glob pattern) into shard files;
``shard_manifest`` returns a shard's manifest (kept samples with their text members, problems met),
extracting it first when ``<cache_dir>/webdataset/<label>-<key>/`` has none. Extraction streams one
member at a time (``tarfile`` mode ``r|*``), groups consecutive members by sample key, writes images
into a temporary folder and renames it into place after its ``manifest.json``. Problems (truncated or
corrupt shard, a sample without an image, a member that is not an image) are recorded, never raised.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import logging
import os
import posixpath
import re
import shutil
import tarfile
import threading
import zlib
from pathlib import Path
from typing import Any

from rsretrieval.data.errors import DatasetNotFoundError

log = logging.getLogger(__name__)

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "tif", "tiff", "bmp")
SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")
TEXT_LIMIT = 1 << 20  # non-image members up to this size are kept as text (captions, json)
VERSION = 1  # of the extraction layout and manifest: part of every cache key
READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError)
HINT = ("Point `annotations` to a folder of webdataset .tar shards, one shard, or a pattern such as "
        "/data/rs5m/{00000..00099}.tar.")


def expand_braces(pattern: str) -> list[str]:
    """Every string of a brace pattern: ``{a,b}`` alternatives and ``{00..12}`` ranges (zero-padded when an end is)."""
    m = re.search(r"\{([^{}]*)\}", pattern)
    if m is None:
        return [pattern]
    body = m.group(1)
    rng = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if rng:
        a, b = rng.groups()
        width = max(len(a), len(b)) if a.startswith("0") or b.startswith("0") else 0
        step = 1 if int(b) >= int(a) else -1
        items = [str(i).zfill(width) for i in range(int(a), int(b) + step, step)]
    else:
        items = body.split(",")
    return [s for item in items for s in expand_braces(pattern[:m.start()] + item + pattern[m.end():])]


def find_shards(annotations: Path | str) -> tuple[list[Path], Path]:
    """The shard files ``annotations`` names and the folder their labels are relative to; missing ones raise."""
    text = os.path.expandvars(os.path.expanduser(str(annotations)))
    if os.path.isdir(text):
        base = Path(text)
        shards = sorted(p for p in base.rglob("*") if p.name.endswith(SHARD_SUFFIXES) and p.is_file())
        if not shards:
            raise DatasetNotFoundError("webdataset shards (*.tar, *.tar.gz, *.tgz)", base, HINT)
        return shards, base
    if os.path.isfile(text):
        return [Path(text)], Path(text).parent
    names = expand_braces(text)
    if names == [text] and not glob.has_magic(text):
        raise DatasetNotFoundError("webdataset shard or folder of shards", text, HINT)
    shards: list[Path] = []
    missing: list[str] = []
    for name in names:
        if glob.has_magic(name):
            shards += sorted(Path(p) for p in glob.glob(name) if os.path.isfile(p))
        elif os.path.isfile(name):
            shards.append(Path(name))
        else:
            missing.append(name)
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise DatasetNotFoundError(f"{len(missing)} of the {len(names)} shards named by the pattern", text,
                                   f"Missing: {shown}. Fix the pattern, or point `annotations` to the folder "
                                   "holding the shards you have.")
    shards = list(dict.fromkeys(shards))
    if not shards:
        raise DatasetNotFoundError("webdataset shards matching the pattern", text, HINT)
    return shards, Path(os.path.commonpath([str(p.parent) for p in shards]))


def shard_label(shard: Path, base: Path) -> str:
    """The shard's path relative to ``base`` without its suffix, e.g. ``pub11/00003``: part of every image id."""
    rel = Path(shard).relative_to(base).as_posix()
    return next((rel[: -len(s)] for s in SHARD_SUFFIXES if rel.endswith(s)), rel)


def shard_cache_dir(shard: Path, label: str, cache_dir: Path) -> Path:
    """``<cache_dir>/webdataset/<label>-<key>``: the key hashes the shard's resolved path, size and mtime."""
    st = Path(shard).stat()
    ident = f"webdataset-v{VERSION}\n{Path(shard).resolve()}\n{st.st_size}\n{st.st_mtime_ns}"
    key = hashlib.sha256(ident.encode()).hexdigest()[:16]
    return Path(cache_dir) / "webdataset" / f"{label.replace('/', '_')}-{key}"


def split_member_name(name: str) -> tuple[str, str] | None:
    """(sample key, extension) of a member path, webdataset's rule: the key ends at the base name's first dot."""
    folder, base = posixpath.split(name.removeprefix("./"))
    stem, dot, ext = base.partition(".")
    if not stem or not dot or not ext:
        return None
    return posixpath.join(folder, stem), ext.lower()


def image_problem(data: bytes) -> str | None:
    """None if PIL recognises the bytes as an image (header only; full decoding is the quarantine's job)."""
    if not data:
        return "empty image member"
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)):
            return None  # the header parsed
    except UnidentifiedImageError:
        return "not an image (PIL recognises no image format in its bytes)"
    except Exception as exc:  # OSError, SyntaxError, ValueError from a damaged header
        return f"not an image ({type(exc).__name__}: {exc})"


def _safe_relpath(key: str, ext: str) -> str:
    """A path inside the extraction folder for a sample's image: no absolute paths, no ``..``."""
    parts = [p for p in key.split("/") if p not in ("", ".", "..")]
    return "/".join(parts or ["_"]) + "." + ext


def _trailing_damage(shard: Path, offset: int) -> str | None:
    """After an uncompressed tar's last member: None when only the zero end-of-archive blocks follow."""
    size = shard.stat().st_size
    if size - offset < 1024:
        return (f"the shard ends at byte {size} without the tar end-of-archive marker: it looks truncated "
                "(samples read before are kept)")
    with open(shard, "rb") as f:
        f.seek(offset)
        for chunk in iter(lambda: f.read(1 << 20), b""):
            if chunk.strip(b"\0"):
                return (f"{size - offset} bytes from byte {offset} on are not readable tar members (a corrupt "
                        "member header?): the rest of the shard is lost, samples read before are kept")
    return None


class _ShardStream:
    """Streams one shard into a folder, grouping consecutive members by key; collects samples and problems."""

    def __init__(self, shard: Path, folder: Path) -> None:
        self.shard, self.folder = shard, folder
        self.samples: list[dict[str, Any]] = []
        self.problems: list[dict[str, str]] = []
        self.pending: dict[str, Any] | None = None
        self.seen: set[str] = set()

    def problem(self, entry: str, kind: str, detail: str) -> None:
        self.problems.append({"entry": entry, "kind": kind, "detail": detail})

    def flush(self, cut: bool = False) -> None:
        """Close the pending sample: kept when it has a good image (captions are checked when the dataset is built)."""
        s, self.pending = self.pending, None
        if s is None or s["duplicate"] or s["bad_image"]:
            return
        if s["image"] is None:
            why = " (cut off by the damage to the shard)" if cut else ""
            self.problem(s["members"][0], "no_image", f"sample {s['key']!r} has no image member "
                         f"({', '.join(IMAGE_EXTS)}){why}; members: {s['members']}")
            return
        self.samples.append({"key": s["key"], "image": s["image"], "member": s["image_member"], "texts": s["texts"],
                             "cut": cut})

    def add(self, member: tarfile.TarInfo, key: str, ext: str, data: bytes) -> None:
        """One member's bytes: an image is checked and written, small other members kept as text."""
        if self.pending is None or self.pending["key"] != key:
            self.flush()
            duplicate = key in self.seen
            if duplicate:
                self.problem(member.name, "duplicate_key", f"sample key {key!r} occurs again, apart from its first "
                             "members: the later members are ignored")
            self.seen.add(key)
            self.pending = {"key": key, "members": [], "image": None, "image_member": None, "texts": {},
                            "duplicate": duplicate, "bad_image": False}
        s = self.pending
        s["members"].append(member.name)
        if s["duplicate"]:
            return
        if ext in IMAGE_EXTS:
            if s["image"] is not None or s["bad_image"]:
                return  # a second image of the sample: the first one counts
            bad = image_problem(data)
            if bad:
                s["bad_image"] = True
                self.problem(member.name, "bad_image", f"{bad}; sample {key!r} left out")
                return
            rel = _safe_relpath(key, ext)
            target = self.folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            s["image"], s["image_member"] = rel, member.name
        elif member.size <= TEXT_LIMIT:
            try:
                s["texts"][ext] = data.decode("utf-8-sig")
            except UnicodeDecodeError:
                s["texts"][ext] = None  # reported if the caption needs it

    def run(self) -> bool:
        """Read the whole shard; False when it could not be opened at all (not cached: may be transient)."""
        try:
            tf = tarfile.open(self.shard, mode="r|*")
        except tarfile.ReadError as exc:
            self.problem("(whole shard)", "unreadable_shard", f"not a readable tar archive ({exc}): shard left out")
            return True
        except OSError as exc:
            self.problem("(whole shard)", "unreadable_shard", f"cannot be opened ({exc}): shard left out")
            return False
        last = "(none)"
        with tf:
            members = iter(tf)
            while True:
                try:
                    member = next(members)
                except StopIteration:
                    break
                except READ_ERRORS as exc:
                    self.damaged(f"after member {last}", exc)
                    return True
                parsed = split_member_name(member.name) if member.isfile() else None
                if parsed is None:
                    continue
                try:
                    data = tf.extractfile(member).read()  # type: ignore[union-attr]
                except READ_ERRORS as exc:
                    self.damaged(member.name, exc)
                    return True
                last = member.name
                self.add(member, *parsed, data)
            offset = tf.offset
            plain = getattr(tf.fileobj, "comptype", None) == "tar"  # offsets are file offsets: not compressed
        self.flush()
        if plain:
            trailing = _trailing_damage(self.shard, offset)
            if trailing:
                self.problem(f"byte {offset} (after member {last})", "damaged_shard", trailing)
        return True

    def damaged(self, entry: str, exc: BaseException) -> None:
        self.flush(cut=True)
        self.problem(entry, "damaged_shard", f"truncated or corrupt tar ({type(exc).__name__}: {exc}): the rest of "
                     f"the shard is lost; the {len(self.samples)} samples read before are kept")


def extract_shard(shard: Path, folder: Path) -> dict[str, Any]:
    """Stream ``shard`` into ``folder`` (filled under a temporary name, renamed when complete); its manifest."""
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    stream = _ShardStream(shard, tmp)
    cacheable = stream.run()
    manifest = {"version": VERSION, "shard": str(shard), "samples": stream.samples, "problems": stream.problems}
    if not cacheable:
        shutil.rmtree(tmp, ignore_errors=True)
        return manifest
    (tmp / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    try:
        os.replace(tmp, folder)
    except OSError:  # another process finished the same shard first: use theirs
        shutil.rmtree(tmp, ignore_errors=True)
        return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    return manifest


def is_extracted(annotations: Path | str, cache_dir: Path) -> bool:
    """Whether every shard of ``annotations`` is already extracted in ``cache_dir`` (a read would not stream any)."""
    shards, base = find_shards(annotations)
    return all((shard_cache_dir(s, shard_label(s, base), cache_dir) / "manifest.json").is_file() for s in shards)


def shard_manifest(shard: Path, folder: Path, check_files: bool) -> dict[str, Any]:
    """The cached manifest of a shard, extracting it first when absent (or, with ``check_files``, incomplete)."""
    manifest_file = folder / "manifest.json"
    if manifest_file.is_file():
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        if not check_files or all((folder / s["image"]).is_file() for s in manifest["samples"]):
            return manifest
        log.warning("%s: extracted images missing from %s: extracting the shard again", shard, folder)
    if folder.exists():
        shutil.rmtree(folder)
    log.info("extracting %s into %s", shard, folder)
    return extract_shard(shard, folder)
