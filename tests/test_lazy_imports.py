"""Importing the library must not pull heavy optional dependencies (Ray lazy-import test style)."""

import subprocess
import sys

HEAVY = ["ray", "open_clip", "sam2", "google.genai", "torch_geometric", "sentence_transformers", "mlflow"]


def test_import_is_light() -> None:
    code = (
        "import sys, rsretrieval, rsretrieval.config, rsretrieval.data.schema, rsretrieval.data.registry, "
        "rsretrieval.evaluation.metrics, rsretrieval.graphs.schema, rsretrieval.graphs.elements, "
        "rsretrieval.graphs.embedder, rsretrieval.graphs.stats, rsretrieval.generation.offline, "
        "rsretrieval.generation.text_graph_parser, rsretrieval.generation.simulated_vlm, rsretrieval.matching.gmn, "
        "rsretrieval.matching.hungarian, rsretrieval.matching.graph_encoders\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_library_below_pipelines_never_imports_ray() -> None:
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1] / "rsretrieval"
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if not {"pipelines", "benchmarks"} & set(p.parts) and ("import ray" in p.read_text() or "from ray" in p.read_text())
    ]
    assert offenders == []


def test_missing_extra_names_the_extra() -> None:
    import pytest

    from rsretrieval._lazy import MissingDependencyError, lazy_import

    with pytest.raises(MissingDependencyError, match=r"rsretrieval\[sam\]"):
        lazy_import("sam2.definitely_missing_module")
