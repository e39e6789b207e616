"""The package's layers (docs/DESIGN.md): imports only point down, and private names stay in their module."""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1] / "rsretrieval"

# module prefix -> prefixes it must never import (lower layers know nothing of the ones above)
FORBIDDEN = {
    "rsretrieval.pipelines.runtime": ("rsretrieval.pipelines.stages", "rsretrieval.pipelines.benchmark",
                                      "rsretrieval.pipelines.jobs", "rsretrieval.benchmarks", "rsretrieval.cli"),
    "rsretrieval.pipelines.stages": ("rsretrieval.pipelines.benchmark", "rsretrieval.pipelines.jobs",
                                     "rsretrieval.benchmarks", "rsretrieval.cli"),
    "rsretrieval.pipelines.benchmark": ("rsretrieval.pipelines.jobs", "rsretrieval.benchmarks", "rsretrieval.cli"),
    "rsretrieval.pipelines.jobs": ("rsretrieval.benchmarks", "rsretrieval.cli"),
    "rsretrieval.fake_gemini": ("rsretrieval.pipelines", "rsretrieval.benchmarks", "rsretrieval.cli"),
}
LIBRARY = ("config", "data", "encoders", "evaluation", "generation", "graphs", "matching", "scenes", "search",
           "training", "analysis")
for pkg in LIBRARY:
    FORBIDDEN[f"rsretrieval.{pkg}"] = ("rsretrieval.pipelines", "rsretrieval.benchmarks", "rsretrieval.cli",
                                       "rsretrieval.fake_gemini")


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        out[name] = ast.parse(path.read_text(encoding="utf-8"))
    return out


def _imports(tree: ast.Module) -> list[tuple[str, list[str]]]:
    """(module, imported names) of every import statement, at any depth (lazy imports count)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
    return out


def test_imports_only_point_down() -> None:
    bad = []
    for name, tree in _modules().items():
        rules = [v for k, v in FORBIDDEN.items() if name == k or name.startswith(k + ".")]
        for module, _ in _imports(tree):
            for forbidden in (f for r in rules for f in r):
                if module == forbidden or module.startswith(forbidden + "."):
                    bad.append(f"{name} imports {module}")
    assert bad == []


def test_no_private_name_used_outside_its_module() -> None:
    bad = []
    others = {str(p): ast.parse(p.read_text(encoding="utf-8")) for folder in ("tests", "rayjobs")
              for p in (ROOT.parent / folder).rglob("*.py")}
    for name, tree in {**_modules(), **others}.items():
        for module, names in _imports(tree):
            if module.startswith("rsretrieval") and module != "rsretrieval._lazy":
                bad += [f"{name}: from {module} import {n}" for n in names if n.startswith("_")]
    assert bad == []


def _package(module: str) -> str | None:
    """'rsretrieval.graphs.schema' -> 'graphs'; pipelines count per role ('pipelines.stages')."""
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "rsretrieval":
        return None
    return ".".join(parts[1:3]) if parts[1] == "pipelines" and len(parts) > 2 else parts[1]


def test_no_cycles_between_packages_lazy_imports_included() -> None:
    graph: dict[str, set[str]] = {}
    for name, tree in _modules().items():
        a = _package(name)
        for module, _ in _imports(tree):
            b = _package(module)
            if a and b and a != b:
                graph.setdefault(a, set()).add(b)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and (seen.add(nxt) or reaches(nxt, goal, seen))):
                return True
        return False

    cycles = sorted(f"{a} -> {b} -> ... -> {a}" for a in graph for b in graph[a] if reaches(b, a, {b}))
    assert cycles == []
