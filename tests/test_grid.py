"""`halleval grid`: expansion and its errors, one model load for all cells, skip and resume."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from jobs.cli import main
from jobs.grid import GRID_FILE, LOADS_FILE, grid_folder, run_grid
from jobs.grid_config import GridConfig, load_grid
from pipeline.config import ConfigError
from pipeline.manifest import MANIFEST_FILE
from pipeline.schema import GENERATIONS_DIR, generation_files, read_generations

REPO = Path(__file__).resolve().parent.parent


def _grid(root: Path, out: Path, **changes) -> dict:
    data = yaml.safe_load((REPO / "configs/grids/tiny.yaml").read_text())
    data["base"]["benchmark"].update(root=str(root), limit=3)
    data["base"]["generation"]["max_new_tokens"] = 4
    data["base"]["output_dir"] = str(out)
    data.update(changes)
    return data


def test_axes_expand_to_valid_cells_with_distinct_run_ids(tmp_path):
    cells = GridConfig.model_validate(_grid(tmp_path, tmp_path)).cells()
    assert [c.axes for c in cells] == [
        {"method.alpha": a, "method.beta": b} for a in (0.0, 0.6) for b in (0.0, 0.15)
    ]
    assert len({c.config.run_id for c in cells}) == 4
    assert [(c.config.method.alpha, c.config.method.beta) for c in cells][-1] == (0.6, 0.15)


def test_table3_grid_has_the_papers_cells():
    cells = load_grid(REPO / "configs/grids/table3.yaml").cells()
    betas = {(c.config.model.name, c.config.method.beta) for c in cells}
    assert betas == {("llava15", 0.0), ("llava15", 0.15), ("llava15", 1.0),
                     ("qwen2_vl", 0.0), ("qwen2_vl", 0.2), ("qwen2_vl", 1.0)}
    assert len(cells) == 2 * 2 * 2 * 3  # model x benchmark x alpha x beta (own beta only)
    assert {c.config.benchmark.name for c in cells} == {"chair", "pope"}


@pytest.mark.parametrize(
    ("axes", "message"),
    [
        ({"method.alpah": [0.1]}, "unknown axis key 'method.alpah'; did you mean 'method.alpha'?"),
        ({"seed.x": [1]}, "unknown axis key 'seed.x': 'seed' has no sub-keys"),
        ({"resources.num_actors": [1, 2]}, "axis 'resources.num_actors' does not change what is generated"),
        ({"scoring.judge": ["exact", "openai:gpt-4"]}, "axis 'scoring.judge' does not change what is generated"),
        ({"method.alpha": []}, "axis 'method.alpha' has no values"),
        ({"method.top_k": [0]}, "cell method.top_k=0"),
    ],
)
def test_bad_axes_fail_in_one_line_naming_the_key(tmp_path, axes, message):
    grid = GridConfig.model_validate(_grid(tmp_path, tmp_path, axes=axes))
    with pytest.raises(ConfigError, match=message.replace("?", r"\?").replace(".", r"\.")) as error:
        grid.cells("g.yaml")
    assert "\n" not in str(error.value)


def test_unknown_top_level_key_in_the_file_is_named(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump({**_grid(tmp_path, tmp_path), "axis": {}}))
    with pytest.raises(ConfigError, match="unknown key 'axis'"):
        load_grid(path)


def test_grid_loads_the_model_once_skips_finished_cells_and_resumes(local_ray, synth, tmp_path, capsys):
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(_grid(synth.coco_root, tmp_path / "runs")))
    assert main(["grid", str(path)]) == 0
    assert "12 samples generated" in capsys.readouterr().out

    grid = load_grid(path)
    grid_dir = grid_folder(grid.name, grid.cells())
    loads = (grid_dir / LOADS_FILE).read_text().splitlines()
    assert len(loads) == 1, "the 4 cells share one model actor"
    assert json.loads(loads[0])["model"] == "llava15"
    table = pq.read_table(grid_dir / GRID_FILE).to_pylist()
    assert [(r["axis:method.alpha"], r["axis:method.beta"]) for r in table] == [
        (0.0, 0.0), (0.0, 0.15), (0.6, 0.0), (0.6, 0.15)
    ]
    assert all(0 <= r["chair.chair_s"] <= 1 and r["n_samples"] == 3 and r["latency_s"] > 0 for r in table)
    # every cell is an ordinary, complete run: SGRS recorded saliency for each token
    for cell in grid.cells():
        rows = read_generations(cell.config.run_dir).to_pylist()
        assert len(rows) == 3 and all(len(r["saliency"]) == r["n_generated"] for r in rows)
        assert {r["run_id"] for r in rows} == {cell.config.run_id}
    page = (grid_dir / "grid.html").read_text()
    assert page.count('src="data:image/png;base64,') >= 3  # heatmap, trade-off, saliency bins

    again = run_grid(grid, log=lambda _: None)
    assert (again.n_skipped, again.n_generated) == (4, 0)

    # half-finish one cell: no scores, one of its three samples left
    run_dir = grid.cells()[1].config.run_dir
    (run_dir / "scores.json").unlink()
    first = read_generations(run_dir).slice(0, 1)
    for file in generation_files(run_dir):
        file.unlink()
    pq.write_table(first, run_dir / GENERATIONS_DIR / "part-kept.parquet")
    resumed = run_grid(grid, log=lambda _: None)
    assert (resumed.n_skipped, resumed.n_generated) == (3, 2)
    assert read_generations(run_dir).num_rows == 3
    assert len((grid_dir / LOADS_FILE).read_text().splitlines()) == 2  # one load for the resume

    # killed after scores.json, before manifest.json: not finished, scored again
    (grid.cells()[0].config.run_dir / MANIFEST_FILE).unlink()
    rescored = run_grid(grid, log=lambda _: None)
    assert (rescored.n_skipped, rescored.n_generated) == (3, 0)
    assert (grid.cells()[0].config.run_dir / MANIFEST_FILE).is_file()

    # another scoring.* (outside the run id): every cell is scored again, nothing generated
    changed = run_grid(grid, overrides=["scoring.tagger=aptagger"], log=lambda _: None)
    assert (changed.n_skipped, changed.n_generated) == (0, 0)
    for cell in changed.cells:
        assert json.loads((cell.config.run_dir / "scores.json").read_text())["scoring"]["tagger"] == "aptagger"
    assert run_grid(grid, overrides=["scoring.tagger=aptagger"], log=lambda _: None).n_skipped == 4


@pytest.mark.parametrize(
    "path", sorted([*(REPO / "configs/grids").rglob("*.yaml"), *(REPO / "configs/suites").rglob("*.yaml")]),
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_every_shipped_grid_and_suite_expands_to_valid_cells(path: Path):
    from jobs.suite_config import SuiteConfig

    kind = SuiteConfig if "suites" in path.parts else GridConfig
    cells = load_grid(path, kind).cells(str(path))
    assert cells and len({c.config.run_id for c in cells}) == len(cells)
