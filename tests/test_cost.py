"""Cost and latency tables (Tables 13-14): step layout per mode, per-query charging, totals."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from rsretrieval.evaluation.cost import INFER, PREP, StageLedger, cell_label, cost_markdown, cost_steps, cost_summary, mode_steps


def _row(mode: str, **kw) -> dict:
    base = {"dataset": "d", "variant": "fine_grained", "backbone": "b", "mode": mode, "crops": "-", "graphs": "-",
            "similarity": "cosine", "training": "none", "n_queries": 10, "n_images": 5, "score_seconds": 0.5,
            "rank_seconds": 0.25}
    return {**base, **kw}


def _ledger() -> StageLedger:
    led = StageLedger()
    led.add("d", "embed:images", 4.0, 5, backbone="b")
    led.add("d", "embed:captions", 8.0, 40, backbone="b")  # both variants: 40 captions, 10 of them this cell's
    led.add("d", "crop:uniform", 2.0, 5)
    led.add("d", "embed:crops:uniform", 6.0, 5, backbone="b")
    led.add("d", "gen:text_scenes", 20.0, 40, tokens_in=3000, tokens_out=1000, cost_usd=0.4, calls=40)
    led.add("d", "embed:text_scenes", 12.0, 40, backbone="b", cached=True)
    return led


@pytest.mark.parametrize("mode,prep,infer", [
    ("v2v", ["embed images"], ["embed query captions", "cosine similarity", "rank"]),
    ("s2s", ["crop images (uniform)", "embed crops"],
     ["generate text scenes", "embed text scenes", "late interaction", "rank"]),
    ("vg2vg", ["embed images", "image graphs (oracle)", "embed image graph nodes (trained)"],
     ["generate query graphs", "embed query captions", "embed query graph nodes (trained)",
      "graph matching (gmn) + cosine", "rank"]),
])
def test_steps_follow_table_13(mode: str, prep: list[str], infer: list[str]) -> None:
    row = _row(mode, crops="uniform" if mode == "s2s" else "-", graphs="oracle" if mode == "vg2vg" else "-",
               similarity="gmn", training="trained")
    steps = mode_steps(row)
    assert [s.label for s in steps if s.side == PREP] == prep
    assert [s.label for s in steps if s.side == INFER] == infer


def test_shared_inference_stages_are_charged_per_query() -> None:
    steps = cost_steps(pd.DataFrame([_row("s2s", crops="uniform", similarity="max-mean")]), _ledger())
    by = steps.set_index("stage")
    assert by.loc["gen:text_scenes", "seconds"] == pytest.approx(20.0 * 10 / 40)
    assert by.loc["gen:text_scenes", "tokens"] == 1000 and by.loc["gen:text_scenes", "cost_usd"] == pytest.approx(0.1)
    assert by.loc["embed:text_scenes", "seconds"] == pytest.approx(3.0) and by.loc["embed:text_scenes", "cached"]
    # data preparation is the whole gallery's, not shared out
    assert by.loc["crop:uniform", "seconds"] == 2.0 and by.loc["embed:crops:uniform", "seconds"] == 6.0
    assert by.loc["score", "seconds"] == 0.5 and by.loc["rank", "seconds"] == 0.25

    total = cost_summary(steps).iloc[0]
    assert total["prep_seconds"] == pytest.approx(8.0)
    assert total["query_transform_seconds"] == pytest.approx(5.0)
    assert total["query_embed_seconds"] == pytest.approx(3.0)
    assert total["inference_seconds"] == pytest.approx(5.0 + 3.0 + 0.5 + 0.25)
    assert total["ms_per_query"] == pytest.approx(1000 * 8.75 / 10)
    assert total["inference_cost_usd"] == pytest.approx(0.1) and total["cached_steps"] == 1


def test_backbone_specific_stages_are_not_mixed_up() -> None:
    led = _ledger()
    led.add("d", "embed:images", 99.0, 5, backbone="other")
    steps = cost_steps(pd.DataFrame([_row("v2v"), _row("v2v", backbone="other")]), led)
    prep = steps[steps["stage"] == "embed:images"].set_index("backbone")["seconds"]
    assert prep["b"] == 4.0 and prep["other"] == 99.0
    other = steps[(steps["backbone"] == "other") & (steps["stage"] == "embed:captions")].iloc[0]
    assert math.isnan(other["seconds"]) and other["detail"] == "not measured"  # never silently zero


def test_markdown_has_both_tables() -> None:
    rows = pd.DataFrame([_row("v2v"), _row("s2s", crops="uniform", similarity="max-mean")])
    steps = cost_steps(rows, _ledger())
    text = "\n".join(cost_markdown(steps, cost_summary(steps)))
    assert "Table 13" in text and "Table 14" in text and "| S2S (uniform) |" in text
    assert "seconds are those recorded when they were computed" in text
    assert cell_label(_row("g2g", graphs="oracle", similarity="gmn", training="vanilla")) == "G2G GMN vanilla (oracle)"
