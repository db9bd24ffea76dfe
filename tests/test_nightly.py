"""`halleval nightly`: paired bootstrap, suite errors, no-change passes, planted regression fails."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from jobs.cli import main
from jobs.grid_config import load_grid
from jobs.nightly import LEDGER_SCHEMA
from jobs.nightly_stats import paired_bootstrap
from jobs.suite_config import SuiteConfig
from pipeline.config import ConfigError

REPO = Path(__file__).resolve().parent.parent


def _pope(preds: list[int], labels: list[int]) -> dict:
    return {"keys": [str(i) for i in range(len(preds))], "columns": {"pred_yes": preds, "label_yes": labels}}


def test_paired_bootstrap_is_zero_for_no_change_and_below_zero_for_a_drop():
    labels = [1, 0] * 20
    same = _pope(labels, labels)
    assert paired_bootstrap("pope", "accuracy", same, same) == (0.0, 0.0)
    worse = _pope([1] * 40, labels)  # always yes: accuracy 1.0 -> 0.5
    low, high = paired_bootstrap("pope", "accuracy", same, worse)
    assert low < high < 0 and -0.75 < low
    assert paired_bootstrap("mme", "total", same, worse) is None  # no per-sample statistic


def test_bootstrap_pairs_by_sample_key_not_position():
    old = _pope([1, 0, 1], [1, 0, 0])
    new = {"keys": ["2", "1", "0"], "columns": {"pred_yes": [1, 0, 1], "label_yes": [0, 0, 1]}}
    assert paired_bootstrap("pope", "accuracy", old, new) == (0.0, 0.0)


@pytest.mark.parametrize(("tolerances", "message"), [
    ({"pope.f2": 0.1}, "unknown score 'pope.f2'; pope has accuracy, f1, precision, recall"),
    ({"popee.f1": 0.1}, "did you mean 'pope'"),
])
def test_bad_tolerance_keys_are_named(tmp_path, tolerances, message):
    data = yaml.safe_load((REPO / "configs/suites/tiny.yaml").read_text())
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump({**data, "tolerances": tolerances}))
    with pytest.raises(ConfigError, match=message):
        load_grid(path, SuiteConfig)


def _suite(synth, tmp_path: Path) -> Path:
    data = yaml.safe_load((REPO / "configs/suites/tiny.yaml").read_text())
    data["base"]["output_dir"] = str(tmp_path / "runs")
    data["base"]["generation"]["max_new_tokens"] = 4
    chair, pope = data["axes"]["benchmark"]
    chair.update(root=str(synth.coco_root), limit=4)
    pope.update(root=str(synth.pope_root), limit=24)
    data["base"]["benchmark"] = chair
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_no_change_passes_and_a_planted_regression_fails_naming_it(local_ray, synth, tmp_path, capsys):
    suite, ledger = _suite(synth, tmp_path), tmp_path / "ledger.parquet"

    def nightly(night: str, *flags: str) -> int:
        return main(["nightly", str(suite), "--baseline", str(ledger), "--night", night, *flags])

    assert nightly("n1", "--update-baseline") == 0
    recorded = pq.read_table(ledger).to_pylist()
    assert sorted(r["metric"] for r in recorded) == ["chair", "pope"]
    assert all(r["git_commit"] and r["date"] and json.loads(r["samples"])["keys"] for r in recorded)
    assert {r["night"] for r in recorded} == {"n1"}
    capsys.readouterr()

    # the same code on another night: every score equal, CI [0, 0], exit 0
    assert nightly("n2") == 0
    out = capsys.readouterr().out
    assert "REGRESSION" not in out and "no regression" in out
    assert "ok pope.accuracy" in out and "diff +0.0000, 95% CI [+0.0000, +0.0000]" in out

    # plant a perfect POPE baseline: tonight's accuracy is then clearly worse
    rows = pq.read_table(ledger).to_pylist()
    for row in rows:
        if row["metric"] == "pope":
            samples = json.loads(row["samples"])
            samples["columns"]["pred_yes"] = samples["columns"]["label_yes"]
            row["samples"] = json.dumps(samples)
            row["scores"] = json.dumps({**json.loads(row["scores"]), "accuracy": 1.0})
    pq.write_table(pa.Table.from_pylist(rows, schema=LEDGER_SCHEMA), ledger)
    assert nightly("n2") == 1
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("REGRESSION"))
    assert line.startswith("REGRESSION pope.accuracy (pope-llava15-greedy-") and "old 1.0000 -> new 0." in line
    assert "95% CI [-0." in line and "tolerance 0.0200" in line
    assert "score(s) regressed beyond tolerance" in out
    page = next((tmp_path / "runs" / "nightly").glob("*/grids/tiny-nightly/nightly.html")).read_text()
    assert 'class="bad"' in page and 'src="data:image/png;base64,' in page

    # a regressing night is not recorded, so running it again still compares with n1 and fails
    assert nightly("n2", "--update-baseline") == 1
    assert "not recorded in" in capsys.readouterr().out
    assert pq.read_table(ledger).num_rows == 2
    assert nightly("n2", "--update-baseline") == 1
    capsys.readouterr()

    # an intended change is accepted explicitly; a re-run of that night still compares with
    # the baseline of its first attempt (n1), and recording it again does not add rows
    assert nightly("n2", "--update-baseline", "--accept") == 0
    assert "accepted as the new baseline" in capsys.readouterr().out
    assert sorted(r["night"] for r in pq.read_table(ledger).to_pylist()) == ["n1", "n1", "n2", "n2"]
    assert nightly("n2", "--update-baseline", "--accept") == 0
    assert "REGRESSION pope.accuracy" in capsys.readouterr().out
    assert pq.read_table(ledger).num_rows == 4
    # the next night compares with the accepted n2: no regression
    assert nightly("n3") == 0
    assert "no regression" in capsys.readouterr().out


def test_accept_without_update_baseline_is_a_one_line_error(tmp_path, capsys):
    suite = REPO / "configs/suites/tiny.yaml"
    assert main(["nightly", str(suite), "--baseline", str(tmp_path / "l.parquet"), "--accept"]) == 2
    assert "--accept records a regressing night" in capsys.readouterr().err
