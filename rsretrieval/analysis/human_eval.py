"""Human retrieval evaluation kit (thesis sec. 6.2): build forms, score the collected answers.

As sec. 6.2.1: ``n_questions`` (7) *different* scene categories (``scene_label``) are drawn at random;
per category one captioned image is the gold and ``n_choices - 1`` (8) images of the same category
are the distractors. A category qualifies when it has at least ``n_choices`` images. With fewer
qualifying categories than questions, :func:`build_questions` raises a ValueError by default;
``on_few_scenes="repeat"`` is the documented fallback: categories are reused (each once before any
twice, never the same gold twice), and a dataset without labels gets random distractors; the form
says which happened. The same
images are asked with the original and with the fine-grained caption, in separate forms, so the two
variants are compared on equal footing. :func:`write_form` writes a self-contained HTML page (images
inlined as JPEG thumbnails; a button downloads the answers as CSV) and ``answer_key.json``;
:func:`score_answers` computes the thesis' Table 6 metrics per variant: mean / median % correct
(per question: share of participants who picked the gold image) and mean / median unique choices
(per question: distinct images picked).
"""

from __future__ import annotations

import html
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc

from rsretrieval.analysis.html import thumbnail_uri
from rsretrieval.data.schema import RSDataset


@dataclass
class Question:
    qid: str
    variant: str
    caption_id: str
    text: str
    gold_image_id: str
    image_ids: list[str]  # shown in this order (positions 1..n)
    distractors: str  # "same scene" or "random"
    scene: str | None = None  # the scene category of the gold image (and of same-scene distractors)


FEW_SCENES = ("error", "repeat")


def _scene_plan(ds_name: str, label: dict[str, str | None], eligible: list[str], n_questions: int, n_choices: int,
                on_few_scenes: str, rng: random.Random) -> list[tuple[str | None, str]]:
    """(scene, gold image) per question: distinct scenes drawn at random, one captioned gold in each."""
    by_scene: dict[str, list[str]] = {}
    for i, lab in label.items():
        if lab:
            by_scene.setdefault(lab, []).append(i)
    ok = set(eligible)
    golds = {sc: sorted(i for i in ids if i in ok) for sc, ids in by_scene.items()}
    qualifying = sorted(sc for sc, ids in by_scene.items() if len(ids) >= n_choices and golds[sc])
    if len(qualifying) >= n_questions:
        return [(sc, rng.choice(golds[sc])) for sc in rng.sample(qualifying, n_questions)]
    if on_few_scenes == "error":
        raise ValueError(
            f"{ds_name}: {len(qualifying)} scene labels with >= {n_choices} images and a captioned image "
            f"({', '.join(qualifying) or 'none'}), fewer than the {n_questions} distinct scene categories the "
            "questions need (thesis sec. 6.2); ask fewer questions or pass on_few_scenes='repeat' "
            "(CLI: --on-few-scenes repeat)")
    if not qualifying:  # no usable labels: random golds, random distractors
        return [(None, g) for g in rng.sample(eligible, min(n_questions, len(eligible)))]
    order, plan, used = rng.sample(qualifying, len(qualifying)), [], set()
    while len(plan) < n_questions and order:
        for sc in list(order):  # one round: every scene once before any scene twice
            free = [g for g in golds[sc] if g not in used]
            if not free:
                order.remove(sc)
                continue
            plan.append((sc, rng.choice(free)))
            used.add(plan[-1][1])
            if len(plan) == n_questions:
                break
    return plan


def build_questions(ds: RSDataset, n_questions: int = 7, n_choices: int = 9, seed: int = 0,
                    variants: tuple[str, ...] = ("original", "fine_grained"),
                    on_few_scenes: str = "error") -> list[Question]:
    """``n_questions`` gold images of distinct scene categories, one question per image and variant (sec. 6.2).

    ``on_few_scenes``: "error" (default) raises when fewer than ``n_questions`` categories have
    ``n_choices`` images; "repeat" reuses categories, or draws random distractors without labels.
    """
    if on_few_scenes not in FEW_SCENES:
        raise ValueError(f"on_few_scenes must be one of {FEW_SCENES}, got {on_few_scenes!r}")
    rng = random.Random(seed)
    caps = ds.captions
    present = [v for v in variants if pc.any(pc.equal(caps["variant"], v)).as_py()]
    if not present:
        raise ValueError(f"{ds.name}: no captions of variants {variants}")
    by_variant = {v: caps.filter(pc.equal(caps["variant"], v)) for v in present}
    images = ds.images.to_pylist()
    label = {r["image_id"]: r.get("scene_label") for r in images}
    eligible = sorted(set.intersection(*(set(t["image_id"].to_pylist()) for t in by_variant.values())))
    if len(images) < n_choices:
        raise ValueError(f"{ds.name}: {len(images)} images, fewer than the {n_choices} choices of a question")
    out = []
    for k, (scene, gold) in enumerate(_scene_plan(ds.name, label, eligible, n_questions, n_choices, on_few_scenes, rng)):
        same = [i for i in label if i != gold and scene is not None and label[i] == scene]
        pool = same if len(same) >= n_choices - 1 else [i for i in label if i != gold]
        shown = rng.sample(pool, n_choices - 1) + [gold]
        rng.shuffle(shown)
        for v in present:
            rows = by_variant[v].filter(pc.equal(by_variant[v]["image_id"], gold))
            j = rng.randrange(rows.num_rows)
            out.append(Question(f"{v}-{k + 1}", v, rows["caption_id"][j].as_py(), rows["text"][j].as_py(), gold,
                                shown, "same scene" if pool is same else "random", scene))
    return out


def write_form(ds: RSDataset, questions: list[Question], out_dir: Path, thumb: int = 160) -> list[Path]:
    """One HTML form per variant (form_<variant>.html) and answer_key.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    uris = dict(zip(ds.images["image_id"].to_pylist(), ds.images["uri"].to_pylist()))
    paths = []
    for variant in dict.fromkeys(q.variant for q in questions):
        qs = [q for q in questions if q.variant == variant]
        blocks = []
        for q in qs:
            cells = "".join(
                f'<label class="c"><input type="radio" name="{q.qid}" value="{n}"><img src="{thumbnail_uri(uris[i], thumb, quality=85)}" '
                f'alt="image {n}"><span>{n}</span></label>' for n, i in enumerate(q.image_ids, 1))
            blocks.append(f'<section><h2>{html.escape(q.qid)}</h2><p class="cap">{html.escape(q.text)}</p>'
                          f'<div class="grid">{cells}</div></section>')
        note = "" if all(q.distractors == "same scene" for q in qs) else \
            "<p><em>Some distractors are random images (the dataset has no scene labels).</em></p>"
        scenes = [q.scene for q in qs if q.scene is not None]
        if len(scenes) != len(set(scenes)):
            note += "<p><em>Some scene categories appear in more than one question (the dataset has fewer " \
                    "labelled scenes than questions).</em></p>"
        page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(ds.name)} {variant}: find the image</title>
<style>body{{font-family:sans-serif;max-width:900px;margin:auto}}.grid{{display:grid;grid-template-columns:repeat(3,1fr);gap:6px}}
.c{{display:flex;flex-direction:column;align-items:center}}.c img{{width:{thumb}px;height:{thumb}px;object-fit:cover}}
.cap{{font-size:1.1em;background:#f4f4f4;padding:8px}}</style></head><body>
<h1>Which image matches the caption?</h1><p>Pick one image per caption. Dataset: {html.escape(ds.name)} ({variant} captions).</p>{note}
<p>Your name or id: <input id="who"></p>{''.join(blocks)}
<button onclick="dl()">Download my answers (CSV)</button>
<script>function dl(){{const who=document.getElementById('who').value||'anonymous';let rows=['participant,question_id,choice'];
for(const q of {json.dumps([q.qid for q in qs])}){{const c=document.querySelector('input[name="'+q+'"]:checked');rows.push([who,q,c?c.value:''].join(','));}}
const a=document.createElement('a');a.href=URL.createObjectURL(new Blob([rows.join('\\n')],{{type:'text/csv'}}));
a.download='answers_{variant}_'+who+'.csv';a.click();}}</script></body></html>"""
        path = out_dir / f"form_{variant}.html"
        path.write_text(page, encoding="utf-8")
        paths.append(path)
    key = out_dir / "answer_key.json"
    key.write_text(json.dumps({"dataset": ds.name, "questions": [asdict(q) for q in questions]}, indent=2))
    return [*paths, key]


def score_answers(answers: list[Path] | pd.DataFrame, key_path: Path) -> pd.DataFrame:
    """Table 6 metrics per variant from answer CSVs (participant, question_id, choice = position 1..n)."""
    key = {q["qid"]: q for q in json.loads(Path(key_path).read_text())["questions"]}
    df = answers if isinstance(answers, pd.DataFrame) else pd.concat([pd.read_csv(p) for p in answers], ignore_index=True)
    missing = {"participant", "question_id", "choice"} - set(df.columns)
    if missing:
        raise ValueError(f"answers lack columns {sorted(missing)} (expected participant, question_id, choice)")
    unknown = sorted(set(df["question_id"]) - set(key))
    if unknown:
        raise ValueError(f"answers name questions not in {key_path}: {unknown[:5]}")
    df = df.dropna(subset=["choice"])
    df["image_id"] = [key[q]["image_ids"][int(c) - 1] for q, c in zip(df["question_id"], df["choice"])]
    df["correct"] = [img == key[q]["gold_image_id"] for q, img in zip(df["question_id"], df["image_id"])]
    per_q = df.groupby("question_id").agg(correct=("correct", "mean"), unique=("image_id", "nunique"),
                                          answers=("image_id", "size")).reset_index()
    per_q["variant"] = [key[q]["variant"] for q in per_q["question_id"]]
    per_q["correct"] *= 100
    table = per_q.groupby("variant").agg(**{"Mean Correct (%)": ("correct", "mean"),
                                            "Median Correct (%)": ("correct", "median"),
                                            "Mean Unique Choices": ("unique", "mean"),
                                            "Median Unique Choices": ("unique", "median"),
                                            "questions": ("question_id", "size"), "answers": ("answers", "sum")})
    return table.reset_index()
