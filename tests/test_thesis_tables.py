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
    assert "% above baseline" in md and "Tables 5-7" in md


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
