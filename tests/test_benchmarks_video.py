"""The video QA and Video-ChatGPT readers on synthetic MP4s, broken variants, and exports."""

import json
import shutil

import pytest
from conftest import read_benchmark as read

from pipeline.api import BenchmarkError
from pipeline.benchmarks.video import write_answers, write_textgen_answers
from pipeline.schema import to_table
from pipeline.synth import write_synthetic
from pipeline.visuals import VisualError, load_visual


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("synth"), n_images=4)


def as_rows(samples, answer="a ball"):
    rows = [{**s.to_row(), "run_id": "r", "model": "m", "method": "greedy", "output_text": answer}
            for s in samples]  # fmt: skip
    return to_table(rows)


@pytest.mark.parametrize("name", ["msvd_qa", "msrvtt_qa", "activitynet_qa"])
def test_video_qa_reads_each_layout_and_decodes(synth, name):
    root = synth.by_benchmark()[name]
    questions = json.loads((root / "test_q.json").read_text())
    answers = {
        a["question_id"]: a["answer"] for a in json.loads((root / "test_a.json").read_text())
    }
    samples = read(name, root)
    assert [s.metadata["id"] for s in samples] == [q["question_id"] for q in questions]
    for sample, question in zip(samples, questions, strict=True):
        assert (
            sample.prompt == question["question"]
            and sample.reference == answers[question["question_id"]]
        )
        assert set(sample.metadata) == {"id", "question", "answer", "video_name"}
        visual = load_visual(sample, num_frames=5)
        assert visual.modality == "video" and len(visual.images) == 5
        assert visual.images[0].mode == "RGB" and visual.images[0].size == (64, 48)


def test_video_qa_broken_entries_and_missing_files(synth, tmp_path):
    root = tmp_path / "msvd"
    shutil.copytree(synth.msvd_qa_root, root)
    questions = json.loads((root / "test_q.json").read_text())
    questions += [{"video_name": "gone", "question_id": "q-missing-video", "question": "Why?"},
                  {"question": "no ids"}, questions[0], "text"]  # fmt: skip
    (root / "test_q.json").write_text(json.dumps(questions))
    answers = json.loads((root / "test_a.json").read_text())
    (root / "test_a.json").write_text(
        json.dumps([*answers, {"question_id": "q-missing-video", "answer": "x"}])
    )
    samples = read("msvd_qa", root)
    assert len(samples) == len(questions) and len({s.sample_id for s in samples}) == len(samples)
    errors = [s.error for s in samples if s.error]
    assert errors == [
        "test_q.json entry 6: missing video_name, question_id",
        f"test_q.json entry 7: question_id {questions[0]['question_id']} repeats an earlier entry",
        "test_q.json entry 8: expected a JSON object",
    ]
    gone = next(s for s in samples if s.metadata.get("id") == "q-missing-video")
    with pytest.raises(VisualError, match="gone.mp4 does not exist"):
        load_visual(gone, num_frames=4)
    (root / "test_a.json").unlink()
    with pytest.raises(BenchmarkError, match="test_a.json does not exist"):
        read("msvd_qa", root)
    shutil.rmtree(root / "videos")
    (root / "test_a.json").write_text("[]")
    with pytest.raises(BenchmarkError, match="no video folder found"):
        read("msvd_qa", root)


def test_video_qa_export_for_the_gpt_judge(synth, tmp_path):
    samples = read("activitynet_qa", synth.activitynet_qa_root)
    path = write_answers(as_rows(samples), tmp_path / "answers.jsonl")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [{"id": s.metadata["id"], "question": s.metadata["question"],
                      "answer": s.metadata["answer"], "pred": "a ball"}
                     for s in samples]  # fmt: skip


def test_video_chatgpt_subsets_and_export(synth, tmp_path):
    root = synth.video_chatgpt_root
    generic = read("video_chatgpt", root)
    assert [s.sample_id for s in generic] == ["vcg-generic-0", "vcg-generic-1"]
    consistency = read("video_chatgpt", root, subset="consistency")
    assert [s.metadata["pair"] for s in consistency] == [1, 2, 1, 2]
    assert len(load_visual(consistency[0], num_frames=3).images) == 3
    path = write_textgen_answers(as_rows(consistency), tmp_path / "consistency.json")
    items = json.loads(path.read_text())
    source = json.loads((root / "consistency_qa.json").read_text())
    assert items == [{**item, "pred1": "a ball", "pred2": "a ball"} for item in source]
    with pytest.raises(BenchmarkError, match="unknown video_chatgpt subset 'spatial'"):
        read("video_chatgpt", root, subset="spatial")
