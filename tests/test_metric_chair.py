"""CHAIR against hand-computed expectations on reference-format fixtures (OPERA chair.py rules)."""

import json
from pathlib import Path

import pytest

from conftest import run_scores
from eval.api import ScoringContext, ScoringError
from eval.metrics.chair import caption_objects, read_captions, score_captions
from pipeline.schema import to_table

FIXTURES = Path(__file__).parent / "fixtures" / "metrics"
COCO = FIXTURES / "coco"


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HALLEVAL_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def test_quirks_of_the_reference_pipeline():
    assert caption_objects("A man skiing down a hill.").objects == ["person", "skis"]  # VBG → ski
    assert caption_objects("Two hot dogs and a teddy bear.").words == ["hot dog", "teddy bear"]
    assert caption_objects("A baby elephant and a passenger jet.").objects == ["elephant", "airplane"]
    assert caption_objects("The seat of the toilet. A seat.").objects == ["toilet"]  # seat dropped
    assert caption_objects("A seat.").objects == ["chair"]
    assert caption_objects("A motor bike and a cheesecake.").objects == []  # leading-space typos
    assert caption_objects("An iPhone.").objects == []  # never matches lower-cased text
    assert caption_objects("A bow tie.").objects == ["tie"]
    assert caption_objects("Dogs, cats and dogs").objects == ["dog", "cat", "dog"]  # plurals, repeats
    assert caption_objects("").objects == [] and caption_objects("").n_words == 0


def test_scores_match_hand_computation():
    result = score_captions(read_captions(FIXTURES / "captions.json"), COCO)
    assert result["chair_s"] == pytest.approx(2 / 6)
    assert result["chair_i"] == pytest.approx(2 / 9)
    assert result["recall"] == pytest.approx(7 / 8)
    assert result["avg_len"] == pytest.approx(35 / 6)
    assert result["n_captions"] == 6
    first, _, third, *_ = result["per_caption"]
    assert first == {"image_id": 1, "caption": "A man skiing with his dog.", "mentioned": ["person", "skis", "dog"],
                     "hallucinated": ["skis"], "gt_objects": ["dog", "person"]}
    assert third["hallucinated"] == ["teddy bear"]  # GT of image 3 comes from the train file
    assert result["tagger"] in ("aptagger", "nltk_perceptron")


def test_json_and_jsonl_give_the_same_result():
    assert read_captions(FIXTURES / "captions.json") == read_captions(FIXTURES / "captions.jsonl")


def test_run_path_equals_file_path(tmp_path):
    pairs = read_captions(FIXTURES / "captions.jsonl")
    rows = [{"run_id": "r", "sample_id": str(i), "benchmark": "chair", "model": "m", "method": "greedy",
             "metadata": json.dumps({"image_id": image_id}), "output_text": caption}
            for i, (image_id, caption) in enumerate(pairs)]
    rows.append({"run_id": "r", "sample_id": "x", "benchmark": "chair", "model": "m", "method": "greedy",
                 "metadata": json.dumps({"image_id": 1}), "error": "CUDA OOM"})
    (tmp_path / "annotations").symlink_to(COCO)
    from_run = run_scores("chair", to_table(rows), ScoringContext(tmp_path, tmp_path))
    from_file = score_captions(pairs, COCO)
    assert from_run.pop("n_errors") == 1
    assert from_run == from_file


def test_errors_name_the_input(tmp_path):
    bad = tmp_path / "caps.jsonl"
    bad.write_text('{"image_id": 1, "caption": "a"}\n{"image_id": 2, "caption": \n')
    with pytest.raises(ScoringError, match=r"caps.jsonl:2: malformed JSON"):
        read_captions(bad)
    with pytest.raises(FileNotFoundError, match="instances_val2014.json"):
        score_captions([(1, "a dog")], tmp_path)
    bad.write_text('{"image_id": "1", "caption": "a"}\n')
    with pytest.raises(ScoringError, match="image_id must be an integer"):
        read_captions(bad)


def test_ground_truth_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("HALLEVAL_CACHE", str(tmp_path))
    score_captions([(1, "a dog")], COCO)
    assert len(list((tmp_path / "chair").glob("gt-*.json"))) == 1
