"""Benchmark: generation under a requests/min quota, injected 429/5xx, and a job killed half-way.

    python rayjobs/bench_generation.py                       # 600 RPM quota, 8 actors, 30% faults
    python rayjobs/bench_generation.py --rows 1200 --actors 8 --quota-rpm 600

Runs against the fake Gemini server on 127.0.0.1 (no key, no cost); prints measured ratios.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

# run as a script (also under `ray job submit --working-dir .`): import the checkout this file is in
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rsretrieval.benchmarks.generation import fault_phase, kill_phase, quota_phase  # noqa: E402


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=600, help="inputs of the quota phase (600 at 600 RPM = one minute)")
    p.add_argument("--actors", type=int, default=8)
    p.add_argument("--quota-rpm", type=int, default=600)
    p.add_argument("--fault-rows", type=int, default=300)
    p.add_argument("--fault-rate", type=float, default=0.3, help="share of requests answered 429 or 5xx")
    p.add_argument("--kill-rows", type=int, default=60)
    p.add_argument("--phases", default="quota,faults,kill")
    a = p.parse_args(argv)
    import os

    import ray

    os.environ.setdefault("GEMINI_API_KEY", "bench-key")  # the fake server takes any key
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
    out: dict[str, Any] = {"note": "fake Gemini server on 127.0.0.1 (simulated API), measured in one run"}
    with tempfile.TemporaryDirectory() as tmp:
        phases = a.phases.split(",")
        if "quota" in phases:
            out["quota"] = quota_phase(a.rows, a.actors, a.quota_rpm, Path(tmp) / "q")
        if "faults" in phases:
            out["faults"] = fault_phase(a.fault_rows, a.actors, a.fault_rate, Path(tmp) / "f")
        if "kill" in phases:
            ray.shutdown()  # the killed job runs its own local cluster
            out["kill"] = kill_phase(a.kill_rows, 2, Path(tmp) / "k")
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
