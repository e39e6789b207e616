"""Text scenes (thesis sec. 4.3.2, prompt A.1.4) and the ``text_scenes`` table.

A generator maps captions to at most ``max_scenes`` self-contained sub-scenes; a short caption with
no interactions gives none. The scene set embedded for a caption is the whole caption as scene 0
(``include_full``) followed by the generated scenes; a caption with no scenes keeps the whole
caption alone. Any object with ``name`` and ``generate(texts) -> list[list[str]]`` plugs in: the
offline :class:`SentenceSplitter` here, the Gemini generator of ``rsretrieval.generation``.
"""

from __future__ import annotations

import re
from typing import Protocol

import pyarrow as pa

from rsretrieval.config import TextScenesConfig

TEXT_SCENES_SCHEMA = pa.schema([
    ("caption_id", pa.string()),
    ("scene_idx", pa.int32()),
    ("text", pa.string()),
    ("source", pa.string()),  # "full" (the caption itself) or the generator's name
])

_SENTENCE_END = re.compile(r"\s*[.!?;]+(?:\s+|$)")
_CLAUSE = re.compile(r",\s+(?=(?:and|while|whereas|where|with|but|which)\b)")


class TextSceneGenerator(Protocol):
    """Captions -> scenes. ``name`` is recorded per row, e.g. 'split@v1' or 'gemini-2.0-flash@A.1.4'."""

    name: str

    def generate(self, texts: list[str]) -> list[list[str]]: ...


def _words(s: str) -> int:
    return len(s.split())


class SentenceSplitter:
    """The offline generator: deterministic sentence and clause splitting with A.1.4's limits.

    1. Split at sentence ends and semicolons; sentences over ``max_scene_words`` also at clause
       boundaries (", and", ", while", ", with", ...).
    2. Fragments under ``min_scene_words`` join their neighbour (no one-word scenes).
    3. Over ``max_scenes``: the adjacent pair with the fewest words merges, until it fits.
    4. A caption that stays one piece, or a single sentence under ``short_caption_words``
       (A.1.4: "a short caption with no interactions"), gives no scenes.
    Wording is preserved; only the separators go.
    """

    name = "split@v1"

    def __init__(self, cfg: TextScenesConfig | None = None) -> None:
        self.cfg = cfg or TextScenesConfig()

    def split(self, text: str) -> list[str]:
        cfg = self.cfg
        text = " ".join(text.split())
        sentences = [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]
        if len(sentences) <= 1 and _words(text) < cfg.short_caption_words:
            return []
        pieces: list[str] = []
        for s in sentences:
            if _words(s) > cfg.max_scene_words:
                pieces += [c.strip() for c in _CLAUSE.split(s) if c.strip()]
            else:
                pieces.append(s)
        merged: list[str] = []
        for p in pieces:
            if merged and (_words(p) < cfg.min_scene_words or _words(merged[-1]) < cfg.min_scene_words):
                merged[-1] = f"{merged[-1]}, {p}"
            else:
                merged.append(p)
        while len(merged) > cfg.max_scenes:
            i = min(range(len(merged) - 1), key=lambda k: _words(merged[k]) + _words(merged[k + 1]))
            merged[i : i + 2] = [f"{merged[i]}, {merged[i + 1]}"]
        return merged if len(merged) > 1 else []

    def generate(self, texts: list[str]) -> list[list[str]]:
        return [self.split(t) for t in texts]


def make_text_scene_generator(cfg: TextScenesConfig) -> TextSceneGenerator:
    if cfg.generator == "split":
        return SentenceSplitter(cfg)
    raise ValueError(f"unknown text scene generator {cfg.generator!r}")


def text_scenes_table(caption_ids: list[str], texts: list[str], scenes: list[list[str]],
                      generator_name: str, cfg: TextScenesConfig) -> pa.Table:
    """Scene set per caption: the caption (scene 0, if kept) then its scenes (at most max_scenes)."""
    if not (len(caption_ids) == len(texts) == len(scenes)):
        raise ValueError(f"{len(caption_ids)} captions but {len(scenes)} scene lists")
    rows: dict[str, list] = {"caption_id": [], "scene_idx": [], "text": [], "source": []}
    for cid, text, sc in zip(caption_ids, texts, scenes):
        items = ([(text, "full")] if cfg.include_full or not sc else [])
        items += [(s, generator_name) for s in sc[: cfg.max_scenes]]
        for i, (t, src) in enumerate(items):
            rows["caption_id"].append(cid)
            rows["scene_idx"].append(i)
            rows["text"].append(t)
            rows["source"].append(src)
    return pa.table(rows, schema=TEXT_SCENES_SCHEMA)
