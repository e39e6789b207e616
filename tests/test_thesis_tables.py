"""Thesis-layout tables: the summary rows reproduce the thesis' own Table 10; layouts; merging runs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from rsretrieval.evaluation.thesis_tables import merge_results, mode_table, tables_markdown, v2v_table

# Thesis Table 10 (fine-grained data, mR): V2V and VG2VG Hungarian/GMN, vanilla/trained, per dataset x backbone
TABLE10 = {
    ("FIT-RS", "RS-M-CLIP"): (7.76, 7.95, 10.85, 7.58, 25.95), ("FIT-RS", "RemoteCLIP"): (17.43, 15.25, 22.42, 17.18, 25.67),
    ("FIT-RS", "GeoRSCLIP"): (41.91, 29.87, 43.84, 41.94, 45.34), ("RSICD", "RS-M-CLIP"): (19.49, 17.96, 21.32, 19.55, 26.25),
    ("RSICD", "RemoteCLIP"): (35.16, 29.34, 37.82, 34.80, 41.47), ("RSICD", "GeoRSCLIP"): (49.46, 40.84, 48.68, 49.53, 53.73),
    ("RSITMD", "RS-M-CLIP"): (29.87, 27.29, 34.59, 29.79, 47.68), ("RSITMD", "RemoteCLIP"): (55.68, 46.98, 59.51, 55.45, 60.73),
    ("RSITMD", "GeoRSCLIP"): (69.84, 56.86, 69.54, 69.21, 71.21), ("SYDNEY", "RS-M-CLIP"): (36.78, 32.18, 41.95, 37.93, 45.83),
    ("SYDNEY", "RemoteCLIP"): (42.53, 37.35, 53.45, 42.53, 52.15), ("SYDNEY", "GeoRSCLIP"): (57.47, 45.98, 63.79, 59.20, 60.20),
    ("UCM", "RS-M-CLIP"): (29.21, 26.83, 37.46, 30.16, 51.95), ("UCM", "RemoteCLIP"): (52.54, 44.60, 56.83, 52.38, 57.67),
    ("UCM", "GeoRSCLIP"): (66.19, 52.38, 65.24, 66.03, 70.05),
}
CELLS = [("v2v", "-", "cosine", "none"), ("vg2vg", "gemini", "hungarian", "vanilla"), ("vg2vg", "gemini", "hungarian", "trained"),
         ("vg2vg", "gemini", "gmn", "vanilla"), ("vg2vg", "gemini", "gmn", "trained")]


def _long(table: dict) -> pd.DataFrame:
    rows = []
    for (ds, bb), values in table.items():
        for (mode, graphs, sim, training), mr in zip(CELLS, values):
            rows.append({"dataset": ds, "variant": "fine_grained", "backbone": bb, "mode": mode, "crops": "-",
                         "graphs": graphs, "similarity": sim, "training": training, "mR": mr,
                         "R@1": mr / 2, "R@5": mr, "R@10": mr * 1.2})
    return pd.DataFrame(rows)


def test_summary_rows_reproduce_thesis_table_10() -> None:
    t = mode_table(_long(TABLE10), "fine_grained").set_index("dataset")
    cols = ["VG2VG hungarian vanilla (gemini)", "VG2VG hungarian trained (gemini)", "VG2VG gmn vanilla (gemini)",
            "VG2VG gmn trained (gemini)"]
    # the thesis prints: % above baseline 6.67 / 80.00 / 40.00 / 100.00; mean % gain -6.64 / +3.77 / +0.13 / +8.30
    assert [round(t.loc["% above baseline", c], 2) for c in cols] == [6.67, 80.0, 40.0, 100.0]
    gains = [t.loc["mean % gain", c] for c in cols]
    assert gains == pytest.approx([-6.64, 3.77, 0.13, 8.30], abs=0.05)  # 3.73 from the rounded table cells
    assert len(t) == 15 + 2


def test_g2g_is_repeated_on_every_backbone_row_and_v2v_table_is_side_by_side() -> None:
    df = _long({k: v for k, v in TABLE10.items() if k[0] == "UCM"})
    df = pd.concat([df, df.assign(variant="original", mR=df["mR"] - 10)], ignore_index=True)
    g2g = {"dataset": "UCM", "variant": "fine_grained", "backbone": "all-MiniLM-L6-v2", "mode": "g2g", "crops": "-",
           "graphs": "gemini", "similarity": "hungarian", "training": "vanilla", "mR": 12.0}
    df = pd.concat([df, pd.DataFrame([g2g])], ignore_index=True)
    t = mode_table(df, "fine_grained")
    assert list(t.columns[:4]) == ["dataset", "backbone", "V2V", "G2G hungarian vanilla (gemini)"]  # mode order
    assert (t.iloc[:3]["G2G hungarian vanilla (gemini)"] == 12.0).all()
    v = v2v_table(df).set_index("backbone")
    assert v.loc["GeoRSCLIP", "fine_grained mR"] == 66.19 and v.loc["GeoRSCLIP", "original mR"] == pytest.approx(56.19)
    assert list(v.columns[1:5]) == ["original R@1", "original R@5", "original R@10", "original mR"]
    md = tables_markdown(df)
    assert "% above baseline" in md and "Table 7, in full Table 16" in md


def test_merge_results_later_run_wins_and_names_bad_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    df = _long({("UCM", "RemoteCLIP"): TABLE10[("UCM", "RemoteCLIP")]})
    df.to_csv(a / "results.csv", index=False)
    df.assign(mR=df["mR"] + 1).iloc[:2].to_csv(b / "results.csv", index=False)
    merged = merge_results([a, b])
    assert len(merged) == 5 and set(merged["run"]) == {"a", "b"}
    assert merged[merged["mode"] == "v2v"]["mR"].item() == pytest.approx(52.54 + 1)
    (tmp_path / "c").mkdir()
    with pytest.raises(FileNotFoundError, match="c: no results.csv"):
        merge_results([tmp_path / "c"])
    (tmp_path / "bad.csv").write_text("x,y\n1,2\n")
    with pytest.raises(ValueError, match="bad.csv: not a results table"):
        merge_results([tmp_path / "bad.csv"])


def test_tables_command_merges_runs(tmp_path: Path, capsys) -> None:
    from rsretrieval.cli import main

    run = tmp_path / "r1"
    run.mkdir()
    _long(TABLE10).to_csv(run / "results.csv", index=False)
    main(["tables", str(run), "--out", str(tmp_path / "merged")])
    assert "mean % gain" in capsys.readouterr().out
    t = pd.read_csv(tmp_path / "merged" / "table_modes_fine_grained.csv")
    assert t["dataset"].iloc[-1] == "mean % gain" and (tmp_path / "merged" / "results.md").exists()


# Thesis Table 12 (mR): V2V, S2S UC, VG2VG GMN on original, then on fine-grained data
TABLE12 = {
    ("FIT-RS", "RS-M-CLIP"): (5.33, 10.83, 8.64, 7.76, 18.03, 25.94),
    ("FIT-RS", "RemoteCLIP"): (11.01, 14.26, 13.34, 17.43, 20.40, 25.67),
    ("FIT-RS", "GeoRSCLIP"): (17.77, 19.47, 19.92, 41.91, 38.83, 45.34),
    ("RSICD", "RS-M-CLIP"): (58.06, 60.67, 57.75, 19.49, 33.13, 26.25),
    ("RSICD", "RemoteCLIP"): (30.82, 33.78, 30.82, 35.16, 37.27, 41.47),
    ("RSICD", "GeoRSCLIP"): (23.94, 28.23, 24.23, 49.46, 48.46, 53.73),
    ("RSITMD", "RS-M-CLIP"): (73.38, 78.29, 73.45, 29.87, 51.27, 47.68),
    ("RSITMD", "RemoteCLIP"): (47.92, 48.06, 49.08, 55.68, 56.43, 60.73),
    ("RSITMD", "GeoRSCLIP"): (35.41, 38.13, 26.46, 69.84, 65.06, 71.21),
    ("SYDNEY", "RS-M-CLIP"): (52.76, 54.23, 52.30, 36.78, 46.53, 45.83),
    ("SYDNEY", "RemoteCLIP"): (48.28, 50.55, 49.20, 42.53, 51.70, 52.15),
    ("SYDNEY", "GeoRSCLIP"): (46.67, 44.00, 48.39, 57.47, 62.62, 60.20),
    ("UCM", "RS-M-CLIP"): (51.08, 57.08, 50.51, 29.21, 48.84, 51.95),
    ("UCM", "RemoteCLIP"): (57.59, 59.17, 47.94, 52.54, 54.32, 57.67),
    ("UCM", "GeoRSCLIP"): (49.21, 50.67, 51.14, 66.19, 67.49, 70.05),
}


def _table12_long(shift_losers: float = 5.0) -> pd.DataFrame:
    """Table 12's cells plus weaker candidates of each family (S2S segments, VG2VG Hungarian) and an
    oracle-graph VG2VG that beats everything but is no method."""
    base = {"crops": "-", "graphs": "-", "similarity": "cosine", "training": "none"}
    cells = [("v2v", base), ("s2s", {**base, "crops": "uniform", "similarity": "max-mean"}),
             ("vg2vg", {**base, "graphs": "gemini", "similarity": "gmn", "training": "trained"})]
    rows = []
    for (ds, bb), values in TABLE12.items():
        for k, variant in enumerate(("original", "fine_grained")):
            for (mode, keys), mr in zip(cells, values[3 * k:3 * k + 3]):
                rows.append({"dataset": ds, "variant": variant, "backbone": bb, "mode": mode, **keys, "mR": mr})
            s2s, vg = values[3 * k + 1], values[3 * k + 2]
            rows += [{"dataset": ds, "variant": variant, "backbone": bb, "mode": "s2s", **base, "crops": "segments",
                      "similarity": "max-mean", "mR": s2s - shift_losers},
                     {"dataset": ds, "variant": variant, "backbone": bb, "mode": "vg2vg", **base, "graphs": "gemini",
                      "similarity": "hungarian", "training": "trained", "mR": vg - shift_losers},
                     {"dataset": ds, "variant": variant, "backbone": bb, "mode": "vg2vg", **base, "graphs": "oracle",
                      "similarity": "gmn", "training": "trained", "mR": vg + 20}]
    df = pd.DataFrame(rows)
    return df.assign(**{"R@1": df["mR"] / 2, "R@5": df["mR"], "R@10": df["mR"] * 1.5})


def test_best_table_reproduces_thesis_table_12() -> None:
    from rsretrieval.evaluation.thesis_tables import best_table

    t, note = best_table(_table12_long())
    s2s, vg = "S2S uniform", "VG2VG gmn trained (gemini)"
    assert list(t.columns) == ["dataset", "backbone", "original V2V", f"original {s2s}", f"original {vg}",
                               "fine_grained V2V", f"fine_grained {s2s}", f"fine_grained {vg}"]
    t = t.set_index(["dataset", "backbone"])
    assert t.loc[("UCM", "GeoRSCLIP"), f"fine_grained {vg}"] == 70.05 and len(t) == 15 + 2
    # the thesis prints: % above baseline 93.33% / 53.33% / 80.00% / 100%; mean % gain +4.11 / +1.86 / +3.55 / +8.30.
    # Its own cells give 9 / 15 = 60% for VG2VG GMN on original data (FIT-RS x3, RSICD GeoRSCLIP, RSITMD RS-M-CLIP
    # and RemoteCLIP, SYDNEY RemoteCLIP and GeoRSCLIP, UCM GeoRSCLIP beat V2V; RSICD RemoteCLIP ties at 30.82):
    # the printed 53.33% is one row short, so the count from the cells is asserted.
    above = t.loc[("% above baseline", "")]
    assert [round(above[f"{v} {m}"], 2) for v in ("original", "fine_grained") for m in (s2s, vg)] == [93.33, 60.0, 80.0, 100.0]
    gain = t.loc[("mean % gain", "")]
    # mean % gain = mean of (method - V2V) in mR points, the definition that reproduces Table 10 and here the
    # fine-grained VG2VG's +8.30. The printed +4.11 / +1.86 / +3.55 do not follow from Table 12's own cells under
    # any simple definition (points: 2.55 / -0.40 / 5.94; relative %: 13.9 / 4.3 / 27.4); the cells' values are asserted.
    assert [gain[f"{v} {m}"] for v in ("original", "fine_grained") for m in (s2s, vg)] == \
        pytest.approx([2.546, -0.404, 5.937, 8.303], abs=0.001)
    assert "test rows themselves" in note and "oracle" in note  # no val rows: the footnote says so


def test_best_method_is_chosen_on_validation_rows_when_present() -> None:
    from rsretrieval.evaluation.thesis_tables import best_methods, best_table, tables_markdown

    test = _table12_long().assign(split="test")
    val = _table12_long(shift_losers=-5.0).assign(split="val")  # on val, segments / Hungarian are the better ones
    chosen, basis = best_methods(pd.concat([test, val], ignore_index=True))
    assert chosen == {"scene-based": "S2S segments", "graph-based": "VG2VG hungarian trained (gemini)"}
    assert "validation" in basis
    t, note = best_table(pd.concat([test, val], ignore_index=True))
    shown = t.set_index(["dataset", "backbone"]).loc[("UCM", "GeoRSCLIP"), "fine_grained S2S segments"]
    assert shown == pytest.approx(67.49 - 5.0)  # the test split's number of the val-chosen method
    assert "split = val" in note
    md = tables_markdown(test.drop(columns="split"))
    assert "(Table 12)" in md and "test rows themselves" in md


def test_write_thesis_tables_writes_table_best_csv(tmp_path: Path) -> None:
    from rsretrieval.evaluation.thesis_tables import write_thesis_tables

    paths = write_thesis_tables(_table12_long(), tmp_path)
    assert tmp_path / "table_best.csv" in paths
    best = pd.read_csv(tmp_path / "table_best.csv")
    assert best["dataset"].tolist()[-2:] == ["% above baseline", "mean % gain"]
