"""The video QA and Video-ChatGPT readers on the released layouts (tests/fixtures/video: real
ActivityNet-QA files), synthetic MP4s, broken variants, and exports."""

import json
import shutil
from pathlib import Path

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
        assert set(sample.metadata) == {"id", "question", "answer", "video_name", "entry"}
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
    with pytest.raises(BenchmarkError, match=r"answer file test_a.json not found \(tried .*msvd/test_a.json, .*msvd/dataset/test_a.json\)"):
        read("msvd_qa", root)
    shutil.rmtree(root / "videos")
    (root / "test_a.json").write_text("[]")
    with pytest.raises(BenchmarkError, match="no video folder found"):
        read("msvd_qa", root)


def test_video_qa_export_for_the_gpt_judges(synth, tmp_path):
    samples = read("activitynet_qa", synth.activitynet_qa_root)
    path = write_answers(as_rows(samples), tmp_path / "answers.jsonl", layout="video_llava")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [{"id": s.metadata["id"], "question": s.metadata["question"],
                      "answer": s.metadata["answer"], "pred": "a ball"}
                     for s in samples]  # fmt: skip
    items = json.loads(write_answers(as_rows(samples), tmp_path / "answers.json").read_text())
    assert [(i["video_name"], i["Q"], i["A"], i["pred"]) for i in items] == [
        (s.metadata["video_name"], s.metadata["question"], s.metadata["answer"], "a ball") for s in samples]


def test_video_chatgpt_subsets_and_export(synth, tmp_path):
    root = synth.video_chatgpt_root
    generic = read("video_chatgpt", root)
    assert [s.sample_id for s in generic] == ["vcg-generic-1", "vcg-generic-2"]
    consistency = read("video_chatgpt", root, subset="consistency")
    assert [s.metadata["pair"] for s in consistency] == [1, 2, 1, 2]
    assert len(load_visual(consistency[0], num_frames=3).images) == 3
    path = write_textgen_answers(as_rows(consistency), tmp_path / "consistency.json")
    items = json.loads(path.read_text())
    source = json.loads((root / "consistency_qa.json").read_text())
    assert items == [{**item, "pred1": "a ball", "pred2": "a ball", "subset": "consistency"} for item in source]
    with pytest.raises(BenchmarkError, match="unknown video_chatgpt subset 'spatial'"):
        read("video_chatgpt", root, subset="spatial")


FIXTURES = Path(__file__).parent / "fixtures" / "video"


def test_activitynet_qa_official_files_in_video_llavas_folder():
    root = FIXTURES / "Activitynet_Zero_Shot_QA"
    questions = json.loads((root / "test_q.json").read_text())
    answers = {a["question_id"]: a["answer"] for a in json.loads((root / "test_a.json").read_text())}
    samples = read("activitynet_qa", root)
    assert [s.sample_id for s in samples] == [f"activitynet_qa-{q['question_id']}" for q in questions]
    assert [(s.prompt, s.reference) for s in samples] == [(q["question"], answers[q["question_id"]]) for q in questions]
    assert [s.metadata["entry"] for s in samples] == list(range(1, 21))
    assert {Path(s.video_path).name for s in samples} == {"v_1QIUV7WYKXg.mp4", "v_9eniCub7u60.mp4"}
    assert len(load_visual(samples[0], num_frames=4).images) == 4  # PyAV decodes the placeholder


def test_activitynet_qa_from_a_checkout_of_the_official_repository(tmp_path):
    """MILVLG/activitynet-qa keeps its files in dataset/ with train/val/test splits."""
    (tmp_path / "dataset").mkdir()
    for name in ("test_q.json", "test_a.json"):
        shutil.copy(FIXTURES / "Activitynet_Zero_Shot_QA" / name, tmp_path / "dataset" / name)
    shutil.copytree(FIXTURES / "Activitynet_Zero_Shot_QA" / "all_test", tmp_path / "all_test")
    official = read("activitynet_qa", tmp_path)
    assert [s.to_row() for s in official] == [
        {**s.to_row(), "video_path": str((tmp_path / "all_test" / Path(s.video_path).name).resolve())}
        for s in read("activitynet_qa", FIXTURES / "Activitynet_Zero_Shot_QA")]
    questions = json.loads((tmp_path / "dataset" / "test_q.json").read_text())[:2]
    (tmp_path / "dataset" / "val_q.json").write_text(json.dumps(questions))
    with pytest.raises(BenchmarkError, match=r"val_a.json not found \(tried .*/val_a.json, .*dataset/val_a.json\)"):
        read("activitynet_qa", tmp_path, subset="val")
    shutil.copy(tmp_path / "dataset" / "test_a.json", tmp_path / "dataset" / "val_a.json")
    assert [s.metadata["id"] for s in read("activitynet_qa", tmp_path, subset="val")] == [
        q["question_id"] for q in questions]


@pytest.mark.parametrize(("name", "folder", "video"), [
    ("msvd_qa", "MSVD_Zero_Shot_QA", "videos/-4wsuPCjDBc_5_15.avi"),
    ("msrvtt_qa", "MSRVTT_Zero_Shot_QA", "videos/all/video7010.mp4"),
])
def test_msvd_and_msrvtt_in_video_llavas_folders(name, folder, video):
    samples = read(name, FIXTURES / folder)
    questions = json.loads((FIXTURES / folder / "test_q.json").read_text())
    assert [s.metadata["id"] for s in samples] == [q["question_id"] for q in questions]  # integer ids kept
    assert samples[0].video_path == str((FIXTURES / folder / video).resolve())
    assert len(load_visual(samples[0], num_frames=2).images) == 2


def test_video_chatgpt_benchmark_in_video_llavas_layout(tmp_path):
    root = FIXTURES / "Video_5_Benchmark"
    for subset, n in (("generic", 3), ("temporal", 2), ("consistency", 4)):
        samples = read("video_chatgpt", root, subset=subset)
        assert len(samples) == n and all(s.error is None for s in samples)
        assert {s.metadata["subset"] for s in samples} == {subset}
        assert Path(samples[0].video_path) == (root / "Test_Videos" / "v_1QIUV7WYKXg.mp4").resolve()
    source = json.loads((root / "Benchmarking_QA" / "consistency_qa.json").read_text())
    pairs = read("video_chatgpt", root, subset="consistency")
    assert [s.prompt for s in pairs] == [item[q] for item in source for q in ("Q1", "Q2")]
    shutil.copytree(root, tmp_path / "bench")
    (tmp_path / "bench" / "Benchmarking_QA" / "temporal_qa.json").unlink()
    with pytest.raises(BenchmarkError, match=r"temporal_qa.json not found \(tried .*Benchmarking_QA/temporal_qa.json"):
        read("video_chatgpt", tmp_path / "bench", subset="temporal")
    (tmp_path / "bench" / "Benchmarking_QA" / "generic_qa.json").write_text('{"Q": "not a list"}')
    with pytest.raises(BenchmarkError, match="generic_qa.json is not a JSON list"):
        read("video_chatgpt", tmp_path / "bench")
