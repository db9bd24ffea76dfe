"""`halleval verify`: a finished run passes; each kind of damage is named and exits 1."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.cli import main
from jobs.run import execute
from pipeline.config import build_config
from pipeline.manifest import MANIFEST_FILE
from pipeline.schema import generation_files


@pytest.fixture(scope="module")
def finished_run(local_ray, synth, tmp_path_factory) -> Path:
    config = build_config({
        "benchmark": {"name": "pope", "root": str(synth.pope_root), "limit": 6},
        "generation": {"max_new_tokens": 3, "batch_size": 2},
        "resources": {"num_actors": 1},
        "output_dir": str(tmp_path_factory.mktemp("runs")),
    })
    execute(config, log=lambda _: None)
    return config.run_dir


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    # The copy keeps the folder name: verify checks that it is the config's run id.
    return Path(shutil.copytree(run_dir, tmp_path / run_dir.name))


@pytest.mark.slow
def test_a_finished_run_has_a_complete_manifest_and_verifies(finished_run, capsys):
    manifest = json.loads((finished_run / MANIFEST_FILE).read_text())
    files = generation_files(finished_run)
    assert [entry["name"] for entry in manifest["files"]] == [path.name for path in files]
    assert (manifest["n_rows"], manifest["n_samples_expected"], manifest["n_samples_present"]) == (6, 6, 6)
    assert all(len(entry["sha256"]) == 64 and entry["rows"] >= 1 for entry in manifest["files"])
    info = json.loads((finished_run / "run.json").read_text())
    assert info["run_id"] == finished_run.name and info["git_commit"] and info["packages"]["ray"]
    assert main(["verify", str(finished_run)]) == 0
    assert "intact" in capsys.readouterr().out


def _drop_a_file(run: Path) -> None:
    generation_files(run)[0].unlink()


def _add_a_copy(run: Path) -> None:
    first = generation_files(run)[0]
    shutil.copy(first, first.with_name("part-copy.parquet"))


def _truncate_a_file(run: Path) -> None:
    path = generation_files(run)[0]
    path.write_bytes(path.read_bytes()[:100])


def _edit_a_score(run: Path) -> None:
    data = json.loads((run / "scores.json").read_text())
    data["metrics"]["pope"]["accuracy"] = 0.99  # counts untouched: only a re-score sees it
    (run / "scores.json").write_text(json.dumps(data))


def _swap_in_rows_of_another_run(run: Path) -> None:
    path = generation_files(run)[0]
    table = pq.read_table(path)
    other = pa.array(["pope-llava15-greedy-000000000000"] * table.num_rows, pa.string())
    pq.write_table(table.set_column(0, pa.field("run_id", pa.string(), nullable=False), other), path)


def _edit_json(name: str, key: str, value) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        data = json.loads((run / name).read_text())
        data[key] = value
        (run / name).write_text(json.dumps(data))
    return edit


def _drop_key(name: str, key: str) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        data = json.loads((run / name).read_text())
        del data[key]
        (run / name).write_text(json.dumps(data))
    return edit


@pytest.mark.slow
@pytest.mark.parametrize(("damage", "expected"), [
    (_drop_a_file, "listed in the manifest but missing"),
    (_drop_a_file, "of the benchmark have no row"),
    (_add_a_copy, "part-copy.parquet is not listed in the manifest"),
    (_add_a_copy, "appear more than once"),
    (_truncate_a_file, "changed since the manifest was written"),
    (_truncate_a_file, "cannot be read"),
    (lambda run: (run / MANIFEST_FILE).unlink(), "manifest.json is missing"),
    (_edit_json(MANIFEST_FILE, "n_errors", 5), "manifest n_errors is 5 but the run holds 0"),
    (_edit_json("scores.json", "n_samples", 7), "scores.json n_samples is 7 but the run holds 6"),
    (_drop_key("scores.json", "metrics"), "scores.json holds no metrics"),
    (_drop_key("run.json", "git_commit"), "run.json lacks 'git_commit'"),
    (lambda run: (run / "scores.json").write_text("{not json"), "scores.json is not valid JSON"),
    (_edit_a_score, "scores.json pope differs from a re-score of the rows: accuracy: 0.99 recorded"),
    (_swap_in_rows_of_another_run, "row(s) carry another run's run_id, e.g. 'pope-llava15-greedy-000000000000'"),
    (_edit_json("scores.json", "scoring", {"judge": "openai:gpt-4", "tagger": "auto"}),
     "scores.json was scored with {'judge': 'openai:gpt-4'"),
    (lambda run: (run / "benchmark_fingerprint.parquet").unlink(), "benchmark_fingerprint.parquet is missing"),
])
def test_damage_is_named_and_exits_1(finished_run, tmp_path, capsys, damage, expected):
    run = _copy(finished_run, tmp_path)
    damage(run)
    assert main(["verify", str(run)]) == 1
    err = capsys.readouterr().err
    assert expected in err, err
    assert all(line.startswith(f"halleval verify: {run}: ") for line in err.splitlines())


def test_a_folder_that_is_not_a_run_is_a_one_line_error(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip() == f"halleval verify: error: {tmp_path / 'nope'} is not a folder; " \
        "pass a run folder, e.g. runs/<run_id>"
