"""Results never go stale silently: error rows are retried, an edited benchmark is noticed and
named, and a foreign file in generations/ is quarantined instead of breaking the re-run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from importlib.metadata import version
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from jobs.cli import main
from pipeline.config import load_config
from pipeline.schema import GENERATIONS_DIR, read_generations

pytestmark = pytest.mark.slow


def _pope(synth, root: Path, questions: list[tuple[int, str, str]]) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"question_id": qid, "image": image, "text": "Is there a dog in the image?", "label": label})
             for qid, image, label in questions]
    (root / "coco_pope_random.json").write_text("\n".join(lines) + "\n")
    return root


def _images(synth) -> list[Path]:
    return sorted((synth.coco_root / "val2014").glob("*.jpg"))


def _run_yaml(tmp_path: Path, root: Path) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({
        "benchmark": {"name": "pope", "root": str(root)},
        "generation": {"max_new_tokens": 2, "batch_size": 2},
        "output_dir": str(tmp_path / "runs"),
    }))
    return path


def _counts(out: str) -> tuple[int, int]:
    found = re.search(r"\((\d+) generated, (\d+) resumed\)", out)
    assert found, out
    return int(found[1]), int(found[2])


def _finished_run(synth, tmp_path: Path) -> tuple[Path, Path]:
    """(config file, run folder) of a finished two-question POPE run."""
    images = _images(synth)
    root = _pope(synth, tmp_path / "pope", [(1, images[0].name, "yes"), (2, images[1].name, "no")])
    for image in images[:2]:
        shutil.copy(image, root / "images" / image.name)
    config = _run_yaml(tmp_path, root)
    assert main(["run", str(config)]) == 0
    return config, load_config(config).run_dir


def test_error_rows_are_generated_again_unless_kept(local_ray, synth, tmp_path, capsys):
    images = _images(synth)
    root = _pope(synth, tmp_path / "pope", [(1, images[0].name, "yes"), (2, "late.jpg", "no"), (3, images[1].name, "no"),
                                            (4, images[1].name, "maybe")])  # a reader error: retrying cannot help
    for image in images[:2]:
        shutil.copy(image, root / "images" / image.name)
    config = _run_yaml(tmp_path, root)
    assert main(["run", str(config)]) == 0
    run_dir = load_config(config).run_dir
    rows = {r["sample_id"]: r for r in read_generations(run_dir).to_pylist()}
    assert "late.jpg does not exist" in rows["pope-random-2"]["error"]
    capsys.readouterr()

    assert main(["run", str(config), "--keep-errors"]) == 0  # the image is still missing: kept
    assert _counts(capsys.readouterr().out) == (0, 4)
    assert {r["sample_id"]: r["error"] for r in read_generations(run_dir).to_pylist()}["pope-random-2"]

    shutil.copy(images[2], root / "images" / "late.jpg")  # the missing image arrives
    assert main(["run", str(config)]) == 0
    out = capsys.readouterr().out
    assert _counts(out) == (1, 3) and "1 error row(s) will be generated again" in out
    rows = {r["sample_id"]: r for r in read_generations(run_dir).to_pylist()}
    assert len(rows) == 4 and rows["pope-random-2"]["error"] is None and rows["pope-random-2"]["output_text"]
    assert "label 'maybe'" in rows["pope-random-line4"]["error"]
    assert json.loads((run_dir / "scores.json").read_text())["n_errors"] == 1
    assert main(["verify", str(run_dir)]) == 0


def _edit_label(root: Path, qid: int, label: str) -> None:
    path = root / "coco_pope_random.json"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for line in lines:
        if line["question_id"] == qid:
            line["label"] = label
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_an_edited_benchmark_is_named_and_only_accepted_changes_are_regenerated(local_ray, synth, tmp_path, capsys):
    images = _images(synth)
    root = _pope(synth, tmp_path / "pope", [(q, images[q % 3].name, "yes") for q in range(1, 6)])
    for image in images[:3]:
        shutil.copy(image, root / "images" / image.name)
    config = _run_yaml(tmp_path, root)
    assert main(["run", str(config)]) == 0
    run_dir = load_config(config).run_dir
    info = json.loads((run_dir / "run.json").read_text())
    assert len(info["benchmark_fingerprint"]["sha256"]) == 64 and info["benchmark_fingerprint"]["n_samples"] == 5
    capsys.readouterr()

    # a label fixed, an image replaced (same name, other bytes), a question removed
    _edit_label(root, 2, "no")
    replaced = root / "images" / images[0].name  # questions 3 use images[0]
    shutil.copy(images[4], replaced)
    os.utime(replaced, ns=(1, 1))
    lines = (root / "coco_pope_random.json").read_text().splitlines()
    (root / "coco_pope_random.json").write_text("\n".join(lines[:4]) + "\n")  # question 5 gone

    assert main(["run", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "benchmark changed since run" in err
    assert "2 changed (image/video file 1x, labels/metadata 1x; e.g. ['pope-random-2', 'pope-random-3'])" in err
    assert "1 removed (e.g. ['pope-random-5'])" in err and "--accept-changes" in err
    assert main(["verify", str(run_dir)]) == 1
    assert "the benchmark changed since the run was generated" in capsys.readouterr().err

    assert main(["run", str(config), "--accept-changes"]) == 0
    assert _counts(capsys.readouterr().out) == (2, 2)
    rows = {r["sample_id"]: r for r in read_generations(run_dir).to_pylist()}
    assert sorted(rows) == [f"pope-random-{q}" for q in range(1, 5)]
    assert rows["pope-random-2"]["reference"] == "no"
    per_item = json.loads((run_dir / "scores.json").read_text())["metrics"]["pope"]["per_item"]
    assert {str(i["question_id"]): i["label"] for i in per_item}["2"] == "no"
    assert main(["verify", str(run_dir)]) == 0
    capsys.readouterr()
    assert main(["run", str(config)]) == 0  # accepted: the new fingerprint is the run's
    assert _counts(capsys.readouterr().out) == (0, 4)


def test_a_zero_byte_or_foreign_parquet_file_is_quarantined_with_one_line(local_ray, synth, tmp_path, capsys):
    config, run_dir = _finished_run(synth, tmp_path)
    folder = run_dir / GENERATIONS_DIR
    (folder / "part-empty.parquet").write_bytes(b"")
    pq.write_table(pa.table({"id": [1, 2], "text": ["a", "b"]}), folder / "part-foreign.parquet")
    capsys.readouterr()

    assert main(["run", str(config)]) == 0
    out = capsys.readouterr().out
    assert _counts(out) == (0, 2)
    empty = next(line for line in out.splitlines() if "part-empty.parquet" in line)
    assert "not a readable Parquet file (0 bytes" in empty and "moved to quarantine/part-empty.parquet" in empty
    foreign = next(line for line in out.splitlines() if "part-foreign.parquet" in line)
    assert "lacks the column(s) run_id, sample_id" in foreign
    assert sorted(p.name for p in (run_dir / "quarantine").iterdir()) == ["part-empty.parquet", "part-foreign.parquet"]
    assert main(["verify", str(run_dir)]) == 0


def test_rows_of_another_version_are_kept_only_when_accepted_and_both_versions_are_recorded(
        local_ray, synth, tmp_path, capsys):
    config, run_dir = _finished_run(synth, tmp_path)
    record = run_dir / "producer.json"
    (this_version,) = json.loads(record.read_text())["producers"]
    assert this_version["packages"]["transformers"] == version("transformers")
    assert f"transformers {version('transformers')} (since" in (run_dir / "report.md").read_text()
    assert "MIXED" not in (run_dir / "report.md").read_text()
    rows = read_generations(run_dir).to_pylist()
    capsys.readouterr()

    # The same config after an upgrade: the folder's rows were written by an older transformers.
    older = {**this_version, "packages": {**this_version["packages"], "transformers": "4.0.0"}}
    record.write_text(json.dumps({"producers": [older]}))
    assert main(["run", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"transformers 4.0.0 -> {version('transformers')}" in err and "--accept-changes" in err
    assert read_generations(run_dir).to_pylist() == rows
    assert json.loads(record.read_text())["producers"] == [older]

    assert main(["run", str(config), "--accept-changes"]) == 0
    out = capsys.readouterr().out
    assert _counts(out) == (0, 2) and "keeping rows of another version" in out
    producers = json.loads(record.read_text())["producers"]
    assert [p["packages"]["transformers"] for p in producers] == ["4.0.0", version("transformers")]
    report = (run_dir / "report.md").read_text()
    assert "generated by: `MIXED, rows from 2 versions:" in report and "transformers 4.0.0" in report
    assert "MIXED, rows from 2 versions" in (run_dir / "report.html").read_text()
    assert main(["run", str(config)]) == 0  # the newest producer is this one: no question asked
    assert main(["verify", str(run_dir)]) == 0


def test_a_run_without_a_producer_record_gets_one_and_a_garbled_record_is_named(local_ray, synth, tmp_path, capsys):
    config, run_dir = _finished_run(synth, tmp_path)
    record = run_dir / "producer.json"
    record.unlink()  # a run of a halleval that kept no record
    capsys.readouterr()
    assert main(["run", str(config)]) == 0
    assert "no producer recorded (a run of an older halleval); recording this one" in capsys.readouterr().out
    assert len(json.loads(record.read_text())["producers"]) == 1

    record.write_text("{not json")
    assert main(["run", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{record}: unreadable producer record" in err, err
