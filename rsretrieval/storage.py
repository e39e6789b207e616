"""Object storage (``s3://``, ``gs://``) for output and cache folders, through pyarrow filesystems.

Credentials and endpoints are configured the standard way, in the environment: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION`` and, for an S3-compatible server (MinIO, Ceph, moto),
``AWS_ENDPOINT_URL``; GCS reads Google's application-default credentials (``GOOGLE_APPLICATION_CREDENTIALS``)
and, for an emulator (fake-gcs-server), ``STORAGE_EMULATOR_HOST``, the variable Google's own clients read.
Stage workers read and write cache folders as local POSIX paths, so a URI folder is worked on in a local
mirror (:func:`mirror_dir`) and synchronised with :class:`RemoteFolder`: every cache is content-keyed and immutable once written, so a
file already present on the other side with the same size is skipped.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

log = logging.getLogger(__name__)

__all__ = ["GCS_EMULATOR_ENV", "MIRROR_ENV", "RemoteFolder", "StorageError", "SyncStats", "TIMEOUT_ENV",
           "delete_folder", "is_uri", "join_uri", "mirror_dir", "open_filesystem"]

MIRROR_ENV = "RSR_MIRROR_DIR"  # root of the local mirrors of URI folders (default $RSR_HOME/mirror)
TIMEOUT_ENV = "RSR_STORAGE_TIMEOUT"  # connect/request timeout in seconds of the preflight check
GCS_EMULATOR_ENV = "STORAGE_EMULATOR_HOST"  # e.g. http://127.0.0.1:4443: a GCS emulator, anonymous access
# written last when pushing and pulling: they mark a cache folder complete (embeddings, synthrs, stores)
MARKERS = ("_SUCCESS", "manifest.json", "meta.json")
# never synchronised: in-progress temporary files and folders, locks, Ray Train's per-run scratch
SKIPPED_PARTS = (".tmp", ".pass-")
SKIPPED_SUFFIXES = (".lock",)
SKIPPED_TOP = ("ray_train",)


class StorageError(OSError):
    """An object-storage folder that cannot be used (the message names the URI)."""


def is_uri(p: Any) -> bool:
    """True for an object-storage URI (``s3://bucket/prefix``, ``gs://...``); False for paths and ``file://``."""
    if p is None or isinstance(p, Path):
        return False
    scheme = urlparse(str(p)).scheme
    return "://" in str(p) and len(scheme) > 1 and scheme != "file"


def join_uri(uri: str, *parts: str) -> str:
    """``s3://b/x`` + ``run`` -> ``s3://b/x/run``."""
    return "/".join([str(uri).rstrip("/"), *(p.strip("/") for p in parts if p)])


def mirror_dir(uri: str, root: Path) -> Path:
    """The local mirror of a URI folder: ``<root>/<bucket>/<prefix>`` (``$RSR_MIRROR_DIR`` overrides root)."""
    u = urlparse(uri)
    base = Path(os.path.expandvars(os.path.expanduser(os.environ[MIRROR_ENV]))) if os.environ.get(MIRROR_ENV) else root
    return base / u.netloc / u.path.strip("/")


def _skipped(rel: str) -> bool:
    parts = rel.split("/")
    return (parts[0] in SKIPPED_TOP or any(s in p for p in parts for s in SKIPPED_PARTS)
            or rel.endswith(SKIPPED_SUFFIXES))


def _ordered(rels: list[str]) -> list[str]:
    """Completeness markers after every other file: an interrupted copy leaves a folder that reads as unfinished."""
    return sorted(rels, key=lambda r: (r.rsplit("/", 1)[-1] in MARKERS, r))


@dataclass
class SyncStats:
    """What one push or pull copied."""

    files: int = 0
    bytes: int = 0
    skipped: int = 0


class RemoteFolder:
    """A folder in object storage, synchronised with a local folder file by file.

    ``push`` uploads the local files the remote lacks, has with another size, or that changed locally
    since this object last synchronised them; ``pull`` downloads what is missing locally (or differs in
    size). Nothing is ever deleted on either side.
    """

    def __init__(self, uri: str, timeout: float | None = None) -> None:
        self.uri = str(uri).rstrip("/")
        self.fs, self.path = open_filesystem(self.uri, timeout)
        self.synced: dict[str, tuple[int, int]] = {}  # rel path -> local (size, mtime_ns) when last synced

    def __repr__(self) -> str:
        return f"RemoteFolder({self.uri!r})"

    def _fail(self, what: str, exc: BaseException) -> StorageError:
        return StorageError(f"{self.uri}: {what}: {exc}")

    def check(self) -> None:
        """Raise :class:`StorageError` naming the URI when the endpoint cannot be reached, the bucket does
        not exist, or the URI is a file."""
        from pyarrow.fs import FileType

        bucket = self.path.split("/", 1)[0]
        try:
            info = self.fs.get_file_info(bucket)
        except OSError as exc:
            hint = (f"{GCS_EMULATOR_ENV}, the network and the credentials (GOOGLE_APPLICATION_CREDENTIALS)"
                    if _is_gcs(self.uri) else
                    "AWS_ENDPOINT_URL, the network and the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)")
            raise StorageError(f"{self.uri}: cannot reach the object store ({_endpoint_of(self.uri)}): {exc}. "
                               f"Check {hint}") from exc
        if info.type == FileType.NotFound:
            make = f"gcloud storage buckets create gs://{bucket}" if _is_gcs(self.uri) else f"aws s3 mb s3://{bucket}"
            raise StorageError(f"{self.uri}: bucket '{bucket}' does not exist (create it first, e.g. `{make}`)")
        try:
            if self.path != bucket and self.fs.get_file_info(self.path).type == FileType.File:
                raise StorageError(f"{self.uri}: is a file, not a folder")
            self.remote_sizes()  # listing rights
        except OSError as exc:
            if isinstance(exc, StorageError):
                raise
            raise self._fail("cannot list the folder", exc) from exc

    def remote_sizes(self) -> dict[str, int]:
        """Relative path -> size of every file under the folder."""
        from pyarrow.fs import FileSelector, FileType

        infos = self.fs.get_file_info(FileSelector(self.path, recursive=True, allow_not_found=True))
        cut = len(self.path.rstrip("/")) + 1
        return {i.path[cut:]: i.size for i in infos if i.type == FileType.File}

    def push(self, local: Path, only: list[str] | None = None) -> SyncStats:
        """Upload ``local``'s files that the remote folder lacks or that changed (see the class); ``only``:
        these relative paths."""
        local, stats = Path(local), SyncStats()
        if not local.is_dir():
            return stats
        remote = self.remote_sizes()
        todo = []
        for f in (local / r for r in only) if only is not None else local.rglob("*"):
            rel = f.relative_to(local).as_posix()
            if not f.is_file() or _skipped(rel):
                continue
            st = f.stat()
            seen = (st.st_size, st.st_mtime_ns)
            if remote.get(rel) == st.st_size and self.synced.get(rel, seen) == seen:
                stats.skipped += 1
                continue
            todo.append((rel, seen))
        order = {rel: i for i, rel in enumerate(_ordered([rel for rel, _ in todo]))}
        for rel, seen in sorted(todo, key=lambda t: order[t[0]]):
            self._copy(local / rel, f"{self.path}/{rel}", upload=True)
            self.synced[rel] = seen
            stats.files, stats.bytes = stats.files + 1, stats.bytes + seen[0]
        if stats.files:
            log.info("storage: pushed %d files (%.1f MB) to %s", stats.files, stats.bytes / 1e6, self.uri)
        return stats

    def pull(self, local: Path, only: list[str] | None = None) -> SyncStats:
        """Download the remote files missing locally or of another size (``only``: these relative paths)."""
        local, stats = Path(local), SyncStats()
        remote = self.remote_sizes()
        todo = []
        for rel, size in remote.items():
            if _skipped(rel) or (only is not None and rel not in only):
                continue
            f = local / rel
            if f.is_file() and f.stat().st_size == size:
                stats.skipped += 1
                st = f.stat()
                self.synced.setdefault(rel, (st.st_size, st.st_mtime_ns))
                continue
            todo.append(rel)
        for rel in _ordered(todo):
            dest = local / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.download")
            self._copy(f"{self.path}/{rel}", tmp, upload=False)
            tmp.replace(dest)
            st = dest.stat()
            self.synced[rel] = (st.st_size, st.st_mtime_ns)
            stats.files, stats.bytes = stats.files + 1, stats.bytes + st.st_size
        if stats.files:
            log.info("storage: pulled %d files (%.1f MB) from %s", stats.files, stats.bytes / 1e6, self.uri)
        return stats

    def _copy(self, src: Any, dest: Any, upload: bool) -> None:
        import shutil

        try:
            if upload:
                with open(src, "rb") as fin, self.fs.open_output_stream(dest) as fout:
                    shutil.copyfileobj(fin, fout, 8 << 20)
            else:
                with self.fs.open_input_stream(src) as fin, open(dest, "wb") as fout:
                    shutil.copyfileobj(fin, fout, 8 << 20)
        except OSError as exc:
            raise self._fail(f"copying {src} -> {dest} failed", exc) from exc


def open_filesystem(uri: str, timeout: float | None = None, ship_credentials: bool = False) -> tuple[Any, str]:
    """(pyarrow filesystem, path inside it) of a URI. S3 takes its endpoint, region and credentials from the
    environment (``AWS_ENDPOINT_URL`` included); ``timeout`` bounds connect/request time and retries, so an
    unreachable endpoint fails in seconds. ``ship_credentials``: S3 keys from the environment are put into
    the filesystem object, so that a pickled copy (Ray Train's processes) carries them."""
    from pyarrow import fs

    u = urlparse(uri)
    if u.scheme in ("s3", "s3a") and ship_credentials and os.environ.get("AWS_ACCESS_KEY_ID"):
        filesystem, path = open_filesystem(uri, timeout)
        options = filesystem.__reduce__()[1][0]
        options.update(access_key=os.environ["AWS_ACCESS_KEY_ID"], secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
                       session_token=os.environ.get("AWS_SESSION_TOKEN"))
        return fs.S3FileSystem(**{k: v for k, v in options.items() if v is not None}), path
    if _is_gcs(uri):
        return _gcs_filesystem(timeout), (u.netloc + u.path).rstrip("/")
    if u.scheme in ("s3", "s3a") and timeout is None:
        timeout = float(os.environ.get(TIMEOUT_ENV, 0)) or None
    if u.scheme in ("s3", "s3a") and timeout is not None:
        kw: dict[str, Any] = {"connect_timeout": timeout, "request_timeout": timeout,
                              "retry_strategy": fs.AwsStandardS3RetryStrategy(max_attempts=2)}
        if os.environ.get("AWS_ENDPOINT_URL"):
            kw["endpoint_override"] = os.environ["AWS_ENDPOINT_URL"]
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if not region and "endpoint_override" not in kw:
            try:
                region = fs.resolve_s3_region(u.netloc)
            except OSError:
                region = None  # the check that follows reports it
        if region:
            kw["region"] = region
        return fs.S3FileSystem(**kw), (u.netloc + u.path).rstrip("/")
    try:
        filesystem, path = fs.FileSystem.from_uri(uri)
    except (OSError, ValueError) as exc:
        raise StorageError(f"{uri}: cannot open the object store: {exc}") from exc
    return filesystem, path.rstrip("/")


def _gcs_filesystem(timeout: float | None) -> Any:
    """pyarrow's GCS filesystem: application-default credentials, or anonymous on ``$STORAGE_EMULATOR_HOST``.
    ``timeout`` (else ``$RSR_STORAGE_TIMEOUT``) bounds the retries, which by default go on for 15 minutes.
    The options travel with a pickled copy (Ray Train's processes); credentials are found on each node."""
    from datetime import timedelta

    from pyarrow import fs

    kw: dict[str, Any] = {}
    timeout = timeout if timeout is not None else float(os.environ.get(TIMEOUT_ENV, 0)) or None
    if timeout is not None:
        kw["retry_time_limit"] = timedelta(seconds=timeout)
    emulator = os.environ.get(GCS_EMULATOR_ENV)
    if emulator:
        e = urlparse(emulator if "://" in emulator else f"http://{emulator}")
        kw.update(anonymous=True, endpoint_override=e.netloc, scheme=e.scheme or "http")
    return fs.GcsFileSystem(**kw)


def _is_gcs(uri: str) -> bool:
    return urlparse(uri).scheme in ("gs", "gcs")


def _endpoint_of(uri: str) -> str:
    """The endpoint a URI's filesystem talks to, for messages."""
    if _is_gcs(uri):
        return os.environ.get(GCS_EMULATOR_ENV) or "storage.googleapis.com"
    return os.environ.get("AWS_ENDPOINT_URL") or "the default endpoint"


def delete_folder(uri: str) -> None:
    """Remove a URI folder and everything under it (a missing one is fine; a failure is logged)."""
    try:
        filesystem, path = open_filesystem(uri)
        filesystem.delete_dir(path)
    except (OSError, ValueError) as exc:
        if "not exist" not in str(exc).lower() and "not found" not in str(exc).lower():
            log.warning("could not delete %s: %s", uri, exc)
