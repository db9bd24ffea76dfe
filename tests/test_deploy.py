"""The KubeRay manifests under deploy/ parse and carry the fields KubeRay and Kubernetes need."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from jobs.cli import build_parser

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def _check_rayjob(job: dict) -> None:
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    assert job["metadata"].get("name") or job["metadata"].get("generateName")
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    # the entrypoint is a real halleval command line
    words = shlex.split(spec["entrypoint"])
    assert words[0] == "halleval"
    build_parser().parse_args(words[1:])
    cluster = spec["rayClusterSpec"]
    head = cluster["headGroupSpec"]
    assert "rayStartParams" in head and head["template"]["spec"]["containers"][0]["image"]
    workers = cluster["workerGroupSpecs"]
    assert workers and all(w["groupName"] and w["replicas"] >= 1 and "rayStartParams" in w for w in workers)
    for worker in workers:
        container = worker["template"]["spec"]["containers"][0]
        assert container["image"] and container["resources"]["limits"]["nvidia.com/gpu"]
    assert cluster["rayVersion"].startswith("2.")


def test_run_rayjob_manifest():
    (job,) = list(yaml.safe_load_all((DEPLOY / "rayjob-run.yaml").read_text()))
    _check_rayjob(job)


def test_nightly_cronjob_creates_a_rayjob_running_the_nightly_suite():
    docs = {d["kind"]: d for d in yaml.safe_load_all((DEPLOY / "nightly-cronjob.yaml").read_text())}
    assert set(docs) == {"ServiceAccount", "Role", "RoleBinding", "ConfigMap", "CronJob"}
    cron = docs["CronJob"]
    assert cron["apiVersion"] == "batch/v1" and len(cron["spec"]["schedule"].split()) == 5
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == docs["ServiceAccount"]["metadata"]["name"]
    assert pod["containers"][0]["command"][:3] == ["kubectl", "create", "-f"]
    rule = docs["Role"]["rules"][0]
    assert rule["apiGroups"] == ["ray.io"] and "create" in rule["verbs"] and "rayjobs" in rule["resources"]
    job = yaml.safe_load(docs["ConfigMap"]["data"]["rayjob.yaml"])
    _check_rayjob(job)
    assert "nightly" in job["spec"]["entrypoint"] and "--baseline" in job["spec"]["entrypoint"]
    suite = job["spec"]["entrypoint"].split()[2]
    assert (DEPLOY.parent / suite).is_file()
