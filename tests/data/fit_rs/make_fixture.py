"""Make tests/data/fit_rs: FIT-RS-shaped annotation files over 16 tiny rendered patches (64x64 PNG).

Usage: python tests/data/fit_rs/make_fixture.py
The records have the published shapes (PROVENANCE.md); the pixels and caption texts are NOT FIT-RS: they come
from the embedded synthetic renderer (synthrs, seed 21), so a retrieval run on the fixture is a plumbing check.
Patch names follow FIT-RS: <STAR scene>__512__<x>___<y>.png.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from rsretrieval.data.synthrs_render import render_scene
from rsretrieval.data.synthrs_scenes import SCENE_TYPES, sample_scene
from rsretrieval.data.synthrs_text import build_graph, fine_grained_caption

HERE = Path(__file__).resolve().parent
IMAGES = HERE / "imgv2_split_512_100_vaild"
N_TRAIN, N_TEST = 10, 6
CAPTION_PROMPTS = ["<image>\nDescribe the image in detail.", "<image>\nPlease provide a detailed caption of this image."]


def patch(i: int) -> tuple[str, str]:
    """(file name, caption) of patch i: a rendered synthrs scene, downscaled to 64 px."""
    rng = np.random.default_rng([21, i])
    spec = sample_scene(rng, SCENE_TYPES[i % len(SCENE_TYPES)], 128)
    name = f"{i // 4:04d}__512__{(i % 4) * 412}___0.png"
    Image.fromarray(render_scene(spec)).resize((64, 64), Image.BILINEAR).save(IMAGES / name, optimize=True)
    return name, fine_grained_caption(spec, build_graph(spec), np.random.default_rng([21, i, 1]))


def conv(*turns: str) -> list[dict[str, str]]:
    return [{"from": "human" if k % 2 == 0 else "gpt", "value": v} for k, v in enumerate(turns)]


def main() -> None:
    IMAGES.mkdir(exist_ok=True)
    patches = [patch(i) for i in range(N_TRAIN + N_TEST)]
    train: list = []
    for i, (name, caption) in enumerate(patches[:N_TRAIN]):
        train.append({"id": len(train), "image": name, "conversations": conv(CAPTION_PROMPTS[i % 2], caption)})
        if i % 3 == 0:  # other tasks on the same patch: ignored by the reader
            train.append({"id": len(train), "image": name, "conversations": conv(
                "<image>\nHow many small vehicles are there in the image?", "3",
                "Please describe the object in the region {<20><35><6><4>|<45>} of the image.", "A small white car.")})
            train.append({"id": len(train), "image": name, "conversations": conv(
                "<image>\nClassify the scene of this image.", "Parking lot.")})
    name0 = patches[0][0]  # a second caption answer of patch 0, in turn 2 of a multi-turn record
    train.append({"id": len(train), "image": name0, "conversations": conv(
        "<image>\nWhat is the relationship between {<10><10><4><4>|<0>} and {<30><30><4><4>|<0>}?", "parked beside",
        "Summarize the whole scene of the image.", "A small scene seen from above, with objects on bare ground.")})
    train.append({"id": len(train), "image": name0, "conversations": conv(
        "<image>\nGenerate the scene graph of the image.", "(car, parked beside, car)")})
    train.append("not a record")  # bad: not an object
    train.append({"id": len(train), "conversations": conv(CAPTION_PROMPTS[0], "A caption without an image.")})  # bad
    train.append({"id": len(train), "image": patches[1][0], "conversations": conv(CAPTION_PROMPTS[0])})  # bad: no answer
    (HERE / "FIT-RS-train-sample.json").write_text(json.dumps(train, indent=2) + "\n", encoding="utf-8")

    question = "Describe the image in detail."
    lines = [json.dumps({"question_id": k, "image": name, "question": question, "ground_truth": caption})
             for k, (name, caption) in enumerate(patches[N_TRAIN:])]
    lines.append('{"question_id": 90, "image": "0009__512__0___0.png", "question": ')  # bad: truncated line
    lines.append(json.dumps({"question_id": 91, "image": "0009__512__412___0.png", "question": question,
                             "ground_truth": "A patch whose image file is missing."}))  # bad: no image file
    (HERE / "test_FITRS_image_caption_eval.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(patches)} patches; {len(train)} train records, {len(lines)} test lines -> {HERE}")


if __name__ == "__main__":
    main()
