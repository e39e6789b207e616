"""cluster/: the launcher YAML against Ray's own schema, the KubeRay manifests structurally, and the
benchmark on a two-node Ray cluster (ray.cluster_utils.Cluster) on this machine."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pytest
import yaml

from rsretrieval.config import load_config
from tests.conftest import QUICK_CONFIG, REPO

CLUSTER = REPO / "cluster"


def _ray_version() -> str:
    import ray

    return ray.__version__


def test_launcher_yaml_validates_against_rays_schema() -> None:
    import jsonschema
    import ray

    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    cfg = yaml.safe_load((CLUSTER / "aws-gpu.yaml").read_text())
    jsonschema.validate(cfg, schema)
    assert cfg["head_node_type"] in cfg["available_node_types"]
    assert _ray_version() in cfg["docker"]["image"]
    setup = " ".join(cfg["setup_commands"])
    assert "torch==2.14.1" in setup and "pip install -q -e" in setup  # as the README installs
    assert cfg["file_mounts"]["/home/ray/rsretrieval"] == "."
    assert "MLFLOW_TRACKING_URI" in setup


def _containers(pod_template: dict) -> list[dict]:
    return pod_template["spec"]["containers"]


def _check_cluster_spec(spec: dict) -> None:
    assert spec["rayVersion"] == _ray_version()
    head = _containers(spec["headGroupSpec"]["template"])
    assert head and all(_ray_version() in c["image"] for c in head)
    assert spec["workerGroupSpecs"], "no worker group"
    for group in spec["workerGroupSpecs"]:
        assert {"groupName", "template"} <= set(group)
        assert group.get("minReplicas", 0) <= group.get("replicas", 0) <= group.get("maxReplicas", 0)
        for c in _containers(group["template"]):
            assert c["resources"]["limits"]["nvidia.com/gpu"] == "1" and _ray_version() in c["image"]
            mounts = {m["name"] for m in c.get("volumeMounts", [])}
            volumes = {v["name"] for v in group["template"]["spec"].get("volumes", [])}
            assert mounts <= volumes


def test_kuberay_raycluster_manifest() -> None:
    doc = yaml.safe_load((CLUSTER / "kuberay" / "raycluster.yaml").read_text())
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayCluster" and doc["metadata"]["name"]
    _check_cluster_spec(doc["spec"])
    env = {e["name"]: e["value"] for e in _containers(doc["spec"]["headGroupSpec"]["template"])[0]["env"]}
    assert {"RSR_CACHE_DIR", "MLFLOW_TRACKING_URI"} <= set(env)


def test_kuberay_rayjob_manifest_runs_the_benchmark_with_valid_overrides() -> None:
    doc = yaml.safe_load((CLUSTER / "kuberay" / "rayjob.yaml").read_text())
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayJob"
    _check_cluster_spec(doc["spec"]["rayClusterSpec"])
    argv = shlex.split(doc["spec"]["entrypoint"])
    assert argv[:2] == ["python", "rayjobs/full_benchmark.py"] and (REPO / argv[1]).is_file()
    overrides = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    cfg = load_config(None, overrides)  # every override is a valid config key and value
    assert cfg.embed.num_gpus_per_actor == 1
    runtime = yaml.safe_load(doc["spec"]["runtimeEnvYAML"])
    assert {"working_dir", "pip", "env_vars"} <= set(runtime)
    assert "MLFLOW_TRACKING_URI" in runtime["env_vars"]


def test_benchmark_on_a_two_node_cluster(tmp_path: Path, session_cache: Path) -> None:
    """Two raylets on this machine (2 + 1 CPUs); two embedding actors, so both nodes take work."""
    import pandas as pd
    import ray
    from ray.cluster_utils import Cluster

    from rsretrieval.pipelines.benchmark.run import run_benchmark

    ray.shutdown()  # the session's local instance; tests after this one start it again
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    old = os.environ.get("RAY_ADDRESS")
    try:
        ray.init(address=cluster.address)
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        cfg = load_config(QUICK_CONFIG, [f"output_dir={tmp_path}", f"cache_dir={session_cache}", "modes=[v2v]",
                                         "embed.concurrency=2", "embed.torch_threads=1", "run_name=two-nodes"])
        res = run_benchmark(cfg)
        df = pd.read_csv(res.results_csv)
        assert len(df) == 2 and df["mR"].notna().all()
    finally:
        ray.shutdown()
        cluster.shutdown()
        if old is not None:
            os.environ["RAY_ADDRESS"] = old


@pytest.mark.parametrize("name", ["aws-gpu.yaml", "kuberay/raycluster.yaml", "kuberay/rayjob.yaml"])
def test_cluster_files_are_documented(name: str) -> None:
    assert name.split("/")[-1] in (CLUSTER / "README.md").read_text()
