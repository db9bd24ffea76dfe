"""The VizWiz, ScienceQA-IMG, LLaVA-Bench and MM-Vet readers and their evaluator exports."""

import json
import shutil

import pytest
from conftest import read_benchmark as read

from pipeline.api import BenchmarkError
from pipeline.benchmarks import llava_bench, mm_vet, scienceqa, vizwiz
from pipeline.schema import to_table
from pipeline.synth import write_synthetic
from pipeline.visuals import load_visual


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("synth"), n_images=4)


def as_table(samples, errors=()):
    return to_table([
        {**s.to_row(), "run_id": "r", "model": "m", "method": "greedy", "output_text": " B ",
         "error": "boom" if s.sample_id in errors else None}
        for s in samples
    ])  # fmt: skip


@pytest.mark.parametrize("name", ["vizwiz", "scienceqa", "llava_bench", "mm_vet"])
def test_every_item_once_and_every_image_decodes(synth, name):
    samples = read(name, synth.by_benchmark()[name])
    assert len(samples) == 4 and len({s.sample_id for s in samples}) == 4
    assert all(s.error is None and s.reference for s in samples)
    for sample in samples:
        assert load_visual(sample, num_frames=1).images[0].size == (96, 72)


def test_vizwiz_prompt_reference_and_submission(synth, tmp_path):
    samples = read("vizwiz", synth.vizwiz_root)
    assert samples[0].prompt == (
        "What kind of room or place is this?\nWhen the provided information is insufficient, "
        "respond with 'Unanswerable'.\nAnswer the question using a single word or phrase."
    )
    assert samples[3].reference == "unanswerable"
    path = vizwiz.write_submission(
        as_table(samples, errors={samples[1].sample_id}), tmp_path / "s.json"
    )
    assert json.loads(path.read_text()) == [
        {"image": s.metadata["image"], "answer": "" if i == 1 else "b"}  # EvalAI-normalised
        for i, s in enumerate(samples)
    ]
    with pytest.raises(BenchmarkError, match="test.json does not exist"):
        read("vizwiz", synth.vizwiz_root, subset="test")


def test_scienceqa_keeps_image_problems_with_lettered_options(synth, tmp_path):
    samples = read("scienceqa", synth.scienceqa_root)
    assert "scienceqa-2000" not in {s.sample_id for s in samples}  # text-only problem
    problems = json.loads((synth.scienceqa_root / "problems.json").read_text())
    for sample in samples:
        problem = problems[sample.metadata["pid"]]
        assert sample.reference == "AB"[problem["answer"]]
        assert sample.prompt.endswith(
            f"A. {problem['choices'][0]}\nB. {problem['choices'][1]}\n"
            "Answer with the option's letter from the given choices directly."
        )
        assert sample.prompt.startswith("Context: ") == bool(problem["hint"])
    path = scienceqa.write_answers(as_table(samples), tmp_path / "a.jsonl")
    first = json.loads(path.read_text().splitlines()[0])
    assert first == {"question_id": "1000", "prompt": "<image>\n" + samples[0].prompt, "text": "B"}


def test_llava_bench_bad_line_and_export(synth, tmp_path):
    root = tmp_path / "bench"
    shutil.copytree(synth.llava_bench_root, root)
    with (root / "questions.jsonl").open("a") as handle:
        handle.write('{"question_id": 0, "image": "001.jpg", "text": "again"}\n{oops\n')
    samples = read("llava_bench", root)
    assert [s.error for s in samples[4:]] == [
        "questions.jsonl line 5: question_id 0 repeats",
        "questions.jsonl line 6: not valid JSON "
        "(Expecting property name enclosed in double quotes)",
    ]
    path = llava_bench.write_answers(as_table(samples[:4]), tmp_path / "answers.jsonl")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["question_id"] for line in lines] == [0, 1, 2, 3]
    assert set(lines[0]) == {"question_id", "prompt", "text", "answer_id", "model_id", "metadata"}


def test_mm_vet_export_and_missing_file(synth, tmp_path):
    samples = read("mm_vet", synth.mm_vet_root)
    path = mm_vet.write_results(as_table(samples), tmp_path / "results.json")
    assert json.loads(path.read_text()) == {f"v1_{i}": " B " for i in range(4)}
    with pytest.raises(BenchmarkError, match="mm-vet.json does not exist"):
        read("mm_vet", tmp_path)
