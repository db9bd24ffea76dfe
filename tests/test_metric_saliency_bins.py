"""Saliency bins: object tokens found by character offsets, binned, plotted; and the score CLI."""

import argparse
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from eval.metrics.saliency_bins import score_saliency_bins, token_char_spans
from jobs import score
from pipeline.schema import to_table

FIXTURES = Path(__file__).parent / "fixtures" / "metrics"
COCO = FIXTURES / "coco"


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HALLEVAL_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def _row(sample_id, image_id, text, pieces, saliency, error=None):
    offsets, position = [], 0
    for piece in pieces:
        offsets.append(text.index(piece, position))
        position = offsets[-1] + len(piece)
    return {"run_id": "r", "sample_id": sample_id, "benchmark": "chair", "model": "m", "method": "sgrs",
            "metadata": json.dumps({"image_id": image_id}), "output_text": text, "tokens": pieces,
            "token_offsets": offsets, "saliency": saliency, "error": error}


def test_token_char_spans_handle_quotes():
    assert token_char_spans('a "dog".', ["a", "``", "dog", "''", "."]) == [(0, 1), (2, 3), (3, 6), (6, 7), (7, 8)]


def test_bins_rates_and_means(tmp_path):
    rows = [
        # image 1 has dog and person; "teddy bear" (2 tokens) is hallucinated
        _row("a", 1, "A dog and a teddy bear.", ["A", " dog", " and", " a", " ted", "dy", " bear", "."],
             [0.9, 0.85, 0.5, 0.5, 0.05, 0.12, 0.15, 0.5]),
        _row("b", 2, "A cat.", ["A", " cat", "."], None),
        _row("c", 2, "", [], [], error="OOM"),
    ]
    (tmp_path / "generations").mkdir()
    pq.write_table(to_table(rows), tmp_path / "generations" / "part-0.parquet")
    result = score_saliency_bins(tmp_path, COCO, bins=(0.0, 0.1, 0.2, 1.0), binning="fixed")
    assert [(b["tokens"], b["hallucinated"]) for b in result["bins"]] == [(1, 1), (2, 2), (1, 0)]
    assert result["bins"][1]["rate"] == 1.0 and result["bins"][2]["rate"] == 0.0
    assert result["mean_saliency_correct"] == pytest.approx(0.85)
    assert result["mean_saliency_hallucinated"] == pytest.approx((0.05 + 0.12 + 0.15) / 3)
    assert (result["n_errors"], result["n_without_saliency"]) == (1, 1)
    assert (tmp_path / "saliency_bins.png").stat().st_size > 1000


def _parse(argv):
    parser = argparse.ArgumentParser()
    score.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_cli_writes_json(tmp_path, capsys):
    out = tmp_path / "pope.json"
    args = _parse(["score", "pope", "--questions", str(FIXTURES / "pope_questions.jsonl"),
                   "--answers", str(FIXTURES / "pope_answers.jsonl"), "--out", str(out)])
    assert args.handler(args) == 0
    assert json.loads(out.read_text())["tp"] == 2
    assert "accuracy" in capsys.readouterr().err
    args = _parse(["score", "chair", "--captions", str(FIXTURES / "captions.jsonl"), "--coco-annotations", str(COCO)])
    assert args.handler(args) == 0
    assert json.loads(capsys.readouterr().out)["n_captions"] == 6
