"""The MME reader on the synthetic release layout, its broken variants, and the eval_tool export."""

import shutil
from functools import partial

import pytest
from conftest import read_benchmark

from pipeline.api import BenchmarkError
from pipeline.benchmarks.mme import COGNITION, PERCEPTION, write_eval_tool_results
from pipeline.schema import to_table
from pipeline.synth import write_synthetic


@pytest.fixture(scope="module")
def mme_root(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("synth"), n_images=4).mme_root


read = partial(read_benchmark, "mme")


def test_both_layouts_every_task_two_questions_per_image(mme_root):
    samples = read(mme_root)
    assert len(samples) == 14 * 2 * 2 and len({s.sample_id for s in samples}) == len(samples)
    assert {s.metadata["task"] for s in samples} == set(PERCEPTION + COGNITION)
    for sample in samples:
        task, image = sample.metadata["task"], sample.metadata["image"]
        folder = mme_root / task / "images" if task in ("artwork", "scene") else None
        if folder is not None:
            assert sample.image_path == str(folder / image)
        assert sample.error is None and sample.reference == sample.metadata["gt"]
        # LLaVA-1.5's prompt: the release's " Please answer yes or no." gives way to the instruction
        assert sample.metadata["question"].endswith("? Please answer yes or no.")
        assert sample.prompt == sample.metadata["question"].removesuffix(" Please answer yes or no.") + (
            "\nAnswer the question using a single word or phrase."
        )
    assert any(s.image_path.endswith(".png") for s in samples)


def test_subsets_and_limit_keep_pairs(mme_root):
    assert {s.metadata["task"] for s in read(mme_root, subset="cognition")} == set(COGNITION)
    assert len(read(mme_root, subset="count,OCR")) == 8
    limited = read(mme_root, limit=3, seed=5)
    assert len(limited) == 6 and limited == read(mme_root, limit=3, seed=5)
    images = [(s.metadata["task"], s.metadata["image"]) for s in limited]
    assert all(images.count(image) == 2 for image in images)
    with pytest.raises(BenchmarkError, match="unknown MME subset 'colour'"):
        read(mme_root, subset="colour")


def test_missing_task_folder_and_bad_lines(mme_root, tmp_path):
    broken = tmp_path / "mme"
    shutil.copytree(mme_root, broken)
    shutil.rmtree(broken / "landmark" / "questions_answers_YN")
    with pytest.raises(BenchmarkError, match="landmark.*questions_answers_YN does not exist"):
        read(broken)
    (broken / "count" / "count_0000.txt").write_text("How many?\tYes\nno tab here\n")
    (broken / "count" / "count_0001.jpg").unlink()
    samples = read(broken, subset="count")
    assert [s.sample_id for s in samples] == [
        "mme-count-count_0000-1", "mme-count-count_0000-2",
        "mme-count-count_0001-1", "mme-count-count_0001-2"]  # fmt: skip
    assert samples[0].error is None
    assert (
        samples[1].error
        == "count/count_0000.txt line 2: expected 'question<TAB>Yes' or 'question<TAB>No'"
    )
    assert "no image count_0001.jpg/.png" in samples[2].error and samples[3].error


def test_eval_tool_export_pairs_adjacent_lines(mme_root, tmp_path):
    samples = read(mme_root, subset="existence,artwork")
    rows = []
    for sample in reversed(samples):  # written out of order on purpose
        row = {**sample.to_row(), "run_id": "r", "model": "m", "method": "greedy"}
        failed = sample is samples[0]
        row.update(output_text=None if failed else "Yes\tit is", error="boom" if failed else None)
        rows.append(row)
    written = write_eval_tool_results(to_table(rows), tmp_path / "results")
    assert [path.name for path in written] == ["artwork.txt", "existence.txt"]
    lines = (tmp_path / "results" / "existence.txt").read_text().splitlines()
    assert len(lines) == 4
    fields = [line.split("\t") for line in lines]
    assert all(len(parts) == 4 for parts in fields)
    assert fields[0][0] == fields[1][0] and fields[2][0] == fields[3][0]
    expected = {(s.metadata["image"], s.metadata["question"], s.metadata["gt"]) for s in samples
                if s.metadata["task"] == "existence"}  # fmt: skip
    assert {tuple(parts[:3]) for parts in fields} == expected
    responses = [parts[3] for parts in fields]
    assert responses.count("Yes it is") == 3 and responses.count("") == 1
