"""One command line: every job is an ``rsretrieval`` subcommand and every ``rayjobs/`` script wraps one."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib

import pytest

from tests.conftest import REPO

COMMANDS = ["benchmark", "generate", "train", "sweep", "audit", "analyze-datasets", "eval-parser", "human-eval",
            "query", "tables", "report", "backbones", "bench", "fake-gemini"]
BENCHES = ["embed", "generation", "gmn", "hungarian", "late-interaction", "scale", "table14", "train"]
WRAPPERS = {"generate": "generate", "train": "train", "sweep": "sweep", "audit": "audit",
            "analyze_datasets": "analyze-datasets", "eval_parser": "eval-parser", "human_eval": "human-eval",
            **{f"bench_{b.replace('-', '_')}": f"bench {b}" for b in BENCHES}}


def _help(func, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        func(argv)
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_help_lists_every_subcommand_with_a_one_line_help(capsys: pytest.CaptureFixture[str]) -> None:
    from rsretrieval.cli import main

    lines = [x.strip() for x in _help(main, ["--help"], capsys).splitlines()]
    for name in COMMANDS:
        i = next(i for i, x in enumerate(lines) if x.split()[:1] == [name])
        assert lines[i][len(name):].strip() or lines[i + 1]  # its help: on its line, or the next for a long name
    bench = _help(main, ["bench", "--help"], capsys)
    assert all(f"    {b} " in bench for b in BENCHES)


@pytest.mark.parametrize("module, command", sorted(WRAPPERS.items()))
def test_each_rayjobs_script_is_its_subcommand(module: str, command: str, capsys: pytest.CaptureFixture[str]) -> None:
    main = importlib.import_module(f"rayjobs.{module}").main
    assert _help(main, ["--help"], capsys).startswith(f"usage: rsretrieval {command} ")


def test_console_entry_point_and_light_import() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["rsretrieval"] == "rsretrieval.cli:console"
    code = ("import sys, rsretrieval.cli as c; c.build_parser(); assert callable(c.console)\n"
            "print([m for m in ('ray', 'torch', 'mlflow', 'google.genai') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"
