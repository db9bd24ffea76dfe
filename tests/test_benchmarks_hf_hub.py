"""pope_hf and mme_hf read lmms-lab/POPE and lmms-lab/MME Parquet (embedded images) offline, from
local files written here in the hub's schema (dataset cards of lmms-lab/POPE and lmms-lab/MME:
POPE `id, question_id, question, answer, image_source, image, category`; MME `question_id,
image, question, answer, category`)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from conftest import read_benchmark
from eval.api import ScoringContext
from eval.scoring import evaluate
from pipeline.api import BenchmarkError
from pipeline.schema import to_table


def _png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _write(path: Path, columns: dict, image_column: str = "image") -> None:
    import datasets

    features = {name: datasets.Value("string") for name in columns if name != image_column}
    features[image_column] = datasets.Image()
    dataset = datasets.Dataset.from_dict(columns, features=datasets.Features(features))
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.to_parquet(str(path))


@pytest.fixture
def pope_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("HALLEVAL_CACHE", str(tmp_path / "cache"))
    rows = {"id": [], "question_id": [], "question": [], "answer": [], "image_source": [], "image": [], "category": []}
    for number, category in enumerate(["adversarial", "popular", "random"] * 2):
        rows["id"].append(str(number))
        rows["question_id"].append(str(number // 3 + 1))
        rows["question"].append(f"Is there a dog in the image? ({number})")
        rows["answer"].append("yes" if number % 2 else "no")
        rows["image_source"].append(f"COCO_val2014_{number:012d}")
        rows["image"].append({"bytes": _png((number * 40, 0, 0)), "path": None})
        rows["category"].append(category)
    _write(tmp_path / "POPE" / "data" / "test-00000-of-00001.parquet", rows)
    return tmp_path / "POPE"


def test_pope_hf_reads_the_hub_schema_and_writes_the_images(pope_hub, tmp_path):
    samples = read_benchmark("pope_hf", pope_hub)
    assert [s.sample_id for s in samples] == [f"pope_hf-{c}-{i}" for i, c in
                                              enumerate(["adversarial", "popular", "random"] * 2)]
    first = samples[0]
    assert first.prompt == "Is there a dog in the image? (0)\nAnswer the question using a single word or phrase."
    assert first.metadata["label"] == "no" and first.metadata["question_id"] == "adversarial-1"
    image = Image.open(first.image_path)
    assert image.size == (8, 8) and image.getpixel((0, 0)) == (0, 0, 0)
    assert Path(first.image_path).is_relative_to(tmp_path / "cache")
    random_only = read_benchmark("pope_hf", pope_hub, subset="random")
    assert [s.metadata["category"] for s in random_only] == ["random", "random"]
    assert len(read_benchmark("pope_hf", pope_hub, limit=4)) == 4


def test_pope_hf_rows_score_with_the_pope_metric(pope_hub):
    samples = read_benchmark("pope_hf", pope_hub)
    rows = [{**s.to_row(), "run_id": "r", "model": "m", "method": "greedy", "output_text": "Yes."} for s in samples]
    output = evaluate("pope", to_table(rows), ScoringContext(pope_hub, pope_hub)).output
    assert output["yes_ratio"] == 1.0 and output["accuracy"] == pytest.approx(3 / 6)


def test_mme_hf_pairs_the_two_questions_of_an_image(tmp_path, monkeypatch):
    monkeypatch.setenv("HALLEVAL_CACHE", str(tmp_path / "cache"))
    rows = {"question_id": [], "image": [], "question": [], "answer": [], "category": []}
    for task in ("existence", "code_reasoning"):
        for image in range(3):
            for answer in ("Yes", "No"):
                rows["question_id"].append(f"{task}/{image:04d}.png")
                rows["image"].append({"bytes": _png((image * 50, 10, 10)), "path": None})
                rows["question"].append(f"Is it {answer}? Please answer yes or no.")
                rows["answer"].append(answer)
                rows["category"].append(task)
    _write(tmp_path / "MME" / "test.parquet", rows)
    samples = read_benchmark("mme_hf", tmp_path / "MME", limit=2, subset="existence")
    assert len(samples) == 4 and len({s.metadata["image"] for s in samples}) == 2
    assert all(s.metadata["task"] == "existence" for s in samples)
    everything = read_benchmark("mme_hf", tmp_path / "MME")
    table = to_table([{**s.to_row(), "run_id": "r", "model": "m", "method": "greedy",
                       "output_text": s.metadata["gt"]} for s in everything])
    output = evaluate("mme", table, ScoringContext(tmp_path, tmp_path)).output
    assert output["tasks"]["existence"]["score"] == 200.0 and output["cognition"] == 200.0


def test_bad_roots_are_one_line_errors(tmp_path):
    with pytest.raises(BenchmarkError, match="no .parquet files"):
        read_benchmark("pope_hf", tmp_path)
    _write(tmp_path / "wrong" / "x.parquet", {"question": ["q"], "image": [{"bytes": _png((0, 0, 0)), "path": None}]})
    with pytest.raises(BenchmarkError, match="missing column"):
        read_benchmark("pope_hf", tmp_path / "wrong")
    with pytest.raises(BenchmarkError, match="no such folder"):
        read_benchmark("mme_hf", tmp_path / "nope")
