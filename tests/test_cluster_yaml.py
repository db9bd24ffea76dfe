"""cluster.yaml validates against the Ray cluster launcher's own JSON schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

from conftest import REPO_ROOT

RAY_SCHEMA = Path(ray.__file__).parent / "autoscaler" / "ray-schema.json"


def test_cluster_yaml_matches_rays_schema():
    config = yaml.safe_load((REPO_ROOT / "cluster.yaml").read_text())
    jsonschema.validate(config, json.loads(RAY_SCHEMA.read_text()))


def test_cluster_has_a_gpu_worker_group_and_installs_halleval():
    config = yaml.safe_load((REPO_ROOT / "cluster.yaml").read_text())
    nodes = config["available_node_types"]
    assert config["head_node_type"] in nodes
    gpu_groups = [name for name, node in nodes.items() if node.get("resources", {}).get("GPU", 0) >= 1]
    assert gpu_groups, "no worker group offers GPUs"
    assert any("pip install" in c and "halleval" in c for c in config["setup_commands"])
    assert any("torch==2.13.0" in c for c in config["setup_commands"])


def test_schema_rejects_a_typo():
    # The validation above is meaningful only if the schema catches mistakes.
    config = yaml.safe_load((REPO_ROOT / "cluster.yaml").read_text())
    config["max_wokers"] = config.pop("max_workers")
    with pytest.raises(jsonschema.ValidationError, match="max_wokers"):
        jsonschema.validate(config, json.loads(RAY_SCHEMA.read_text()))
