"""Offline generation backends: the same records as the Gemini path, made without a key or network.

* ``text_graph``: the heuristic parser (:mod:`rsretrieval.generation.text_graph_parser`), any caption;
* ``text_scenes``: the deterministic sentence/clause splitter of :mod:`rsretrieval.scenes.text_scenes`;
* ``object_counts`` / ``image_graph`` / ``fine_grained_caption``: the simulated VLM, which needs the
  dataset's ground-truth graphs (synthrs has them; a real dataset needs Gemini for image tasks).

Records have ``calls = tokens = 0`` and a generator label naming the stand-in, so every table can
say which numbers came from a heuristic or a simulation.
"""

from __future__ import annotations

import json
from typing import Any

from rsretrieval.config import GenerationConfig, TextScenesConfig
from rsretrieval.generation.store import GenerationRecord, input_hash, record_key
from rsretrieval.generation.tasks import get_task, to_json
from rsretrieval.graphs.schema import ImageSceneGraph

IMAGE_TASKS = ("object_counts", "image_graph", "fine_grained_caption")


class NoOfflineBackend(ValueError):
    """An image task on a dataset without ground-truth graphs, with the offline backend."""


def _record(task: str, generator: str, input_id: str, payload: str, parsed: str | None, error: str | None = None) -> GenerationRecord:
    prompt_version = get_task(task).prompt_version
    h = input_hash(payload)
    return GenerationRecord(key=record_key(task, generator, prompt_version, h), task=task, model=generator,
                            prompt_version=prompt_version, input_hash=h, input_id=input_id,
                            status="ok" if parsed is not None else "failed", raw_text=parsed, parsed=parsed,
                            error=error, generator=generator)


def offline_generator_name(task: str, gen: GenerationConfig, scenes: TextScenesConfig | None = None) -> str:
    if task == "text_graph":
        from rsretrieval.generation.text_graph_parser import HeuristicTextGraphParser

        return f"{HeuristicTextGraphParser.name} (offline heuristic)"
    if task == "text_scenes":
        from rsretrieval.scenes.text_scenes import SentenceSplitter

        return f"{SentenceSplitter(scenes).name} (offline splitter)"
    from rsretrieval.generation.simulated_vlm import NAME

    return f"{NAME} seed={gen.seed} (simulated)"


def offline_records(task: str, rows: list[dict[str, Any]], gen: GenerationConfig,
                    ground_truth: dict[str, ImageSceneGraph] | None = None,
                    scenes: TextScenesConfig | None = None, dataset: str = "") -> dict[str, GenerationRecord]:
    """input_id -> record for rows with ``input_id`` and ``text`` (text tasks) or ground truth (image tasks)."""
    name = offline_generator_name(task, gen, scenes)
    out: dict[str, GenerationRecord] = {}
    if task in IMAGE_TASKS:
        from rsretrieval.generation.simulated_vlm import simulate

        if not ground_truth:
            raise NoOfflineBackend(
                f"{task} on {dataset or 'this dataset'}: the offline backend simulates a VLM from ground-truth graphs, "
                "which only synthrs has; set generation.backend=gemini (key in GEMINI_API_KEY) for real images")
        for row in rows:
            iid = row["input_id"]
            truth = ground_truth.get(iid)
            if truth is None:
                out[iid] = _record(task, name, iid, iid, None, "no ground-truth graph for this image")
                continue
            out[iid] = _record(task, name, iid, truth.model_dump_json(), simulate(task, truth, iid, gen.simulated_vlm, gen.seed))
        return out
    if task == "text_graph":
        from rsretrieval.generation.text_graph_parser import HeuristicTextGraphParser

        parser = HeuristicTextGraphParser()
        for row in rows:
            out[row["input_id"]] = _record(task, name, row["input_id"], row["text"] or "", to_json(parser.parse(row["text"] or "")))
        return out
    if task == "text_scenes":
        from rsretrieval.scenes.text_scenes import SentenceSplitter

        splitter = SentenceSplitter(scenes)
        for row in rows:
            text = row["text"] or ""
            out[row["input_id"]] = _record(task, name, row["input_id"], text, json.dumps(splitter.split(text)))
        return out
    raise ValueError(f"no offline backend for task {task!r}")
