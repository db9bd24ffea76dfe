"""A resource request the Ray cluster can never hold fails in seconds with one line (or waits,
visibly, for an autoscaler), instead of hanging with 0 rows."""

from __future__ import annotations

import time

import pytest
import yaml

from jobs.cli import main
from pipeline.config import build_config
from pipeline.resources import shortfall


def _config(synth, tmp_path, **resources):
    return build_config({"benchmark": {"name": "pope", "root": str(synth.pope_root)},
                         "resources": resources, "output_dir": str(tmp_path)})


def test_actors_and_the_reader_are_placed_node_by_node(synth, tmp_path):
    two_cpus = [{"CPU": 2.0}]
    assert shortfall([_config(synth, tmp_path, num_actors=3, cpus_per_actor=0.5)], two_cpus) is None
    message = shortfall([_config(synth, tmp_path, num_actors=4, cpus_per_actor=0.5)], two_cpus)
    assert "4 actor(s) x (0.5 CPU, 0 GPU) plus 1 input worker(s) x 0.25 CPU and 0.25 CPU for a write task, which never fit" in message
    assert "1 node(s), 2 CPUs and 0 GPUs" in message
    # every input worker holds 0.25 CPU for the whole run, and a write task needs 0.25 beside them:
    # 1.5 + 0.25 + 0.25 fits in 2 CPUs, 1.5 + 2 x 0.25 + 0.25 does not
    assert "plus 2 input worker(s) x 0.25 CPU and 0.25 CPU for a write task, which never fit" in shortfall(
        [_config(synth, tmp_path, num_actors=3, cpus_per_actor=0.5, input_workers=2)], two_cpus)
    assert shortfall([_config(synth, tmp_path, num_actors=2, cpus_per_actor=0.5, input_workers=3)], two_cpus) is None
    # enough CPUs in total, but an actor cannot span two nodes
    assert shortfall([_config(synth, tmp_path, num_actors=1, cpus_per_actor=3)], [{"CPU": 2.0}, {"CPU": 2.0}])
    gpu = shortfall([_config(synth, tmp_path, gpus_per_actor=1)], two_cpus)
    assert "resources.gpus_per_actor=1 but no node has 1 GPU(s)" in gpu and "gpus_per_actor: 0" in gpu
    assert shortfall([_config(synth, tmp_path, num_actors=2, gpus_per_actor=1)],
                     [{"CPU": 8.0, "GPU": 1.0}, {"CPU": 8.0, "GPU": 1.0}]) is None


@pytest.mark.slow
@pytest.mark.parametrize(("resources", "expected"), [
    ({"num_actors": 4, "cpus_per_actor": 0.5}, "4 actor(s) x (0.5 CPU, 0 GPU) plus 1 input worker(s) x 0.25 CPU"),
    ({"gpus_per_actor": 1}, "resources.gpus_per_actor=1 but no node has 1 GPU(s)"),
])
def test_an_impossible_request_fails_in_seconds_with_one_line(local_ray, synth, tmp_path, capsys, resources, expected):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"benchmark": {"name": "pope", "root": str(synth.pope_root)},
                                    "resources": resources, "output_dir": str(tmp_path / "runs")}))
    start = time.monotonic()
    assert main(["run", str(path)]) == 2
    assert time.monotonic() - start < 30
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and expected in err, err


@pytest.mark.slow
def test_with_an_autoscaler_it_waits_visibly_then_fails(local_ray, synth, tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"benchmark": {"name": "pope", "root": str(synth.pope_root)},
                                    "resources": {"gpus_per_actor": 1, "wait_for_resources_s": 2},
                                    "output_dir": str(tmp_path / "runs")}))
    start = time.monotonic()
    assert main(["run", str(path)]) == 2
    assert 2 <= time.monotonic() - start < 30
    captured = capsys.readouterr()
    assert "waiting up to 2s more for the cluster to grow: resources.gpus_per_actor=1" in captured.out
    assert "after waiting 2s for the autoscaler" in captured.err
