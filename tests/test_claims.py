"""The claims report (eval.claims), quantile saliency bins and the organism's planted-pair figures,
on hand-made generations Parquet with known saliency."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from eval.api import ScoringError
from eval.claims import claims, render_claims
from eval.metrics.saliency_bins import score_saliency_bins
from eval.organism import planted_rates
from jobs.cli import main
from pipeline.schema import to_table

COCO = Path(__file__).parent / "fixtures" / "metrics" / "coco"  # image 1: dog, person; image 2: cat


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HALLEVAL_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def _row(index: int, image_id: int, words: list[str], saliency: list[float] | None):
    text = " ".join(words)
    offsets, position = [], 0
    for word in words:
        offsets.append(text.index(word, position))
        position = offsets[-1] + len(word)
    return {"run_id": "r", "sample_id": f"s{index}", "benchmark": "chair", "model": "m", "method": "greedy",
            "metadata": json.dumps({"image_id": image_id}), "output_text": text, "tokens": words,
            "token_offsets": offsets, "saliency": saliency, "error": None}


def _write_run(folder: Path, rows: list[dict], key_span: str = "outputs") -> Path:
    (folder / "generations").mkdir(parents=True)
    pq.write_table(to_table(rows), folder / "generations" / "part-0.parquet")
    (folder / "config.yaml").write_text(yaml.safe_dump({"method": {"key_span": key_span},
                                                       "benchmark": {"root": str(COCO)}}))
    return folder


def _captions(hallucinated_low: bool, n: int = 40) -> list[dict]:
    """Image 1 (dog, person): 'a dog and a cat': cat hallucinated. Saliency of the object tokens
    (positions 1 and 4) and of the token before each is set so the effect's sign is known."""
    rows = []
    for i in range(n):
        jitter = 0.001 * (i % 7)
        correct, wrong = 0.30 + jitter, (0.05 if hallucinated_low else 0.60) + jitter
        before_wrong = 0.02 if hallucinated_low else 0.5
        rows.append(_row(i, 1, ["a", "dog", "and", "a", "cat", "."],
                         [0.2, correct, 0.3, before_wrong, wrong, 0.2]))
        # A clean caption with the same positions, so position matching has correct tokens too.
        rows.append(_row(1000 + i, 1, ["a", "dog", "and", "a", "person", "."],
                         [0.2, correct, 0.3, 0.3, correct + 0.01, 0.2]))
    return rows


def test_claims_hold_when_hallucinated_tokens_have_low_saliency(tmp_path):
    result = claims(_write_run(tmp_path, _captions(hallucinated_low=True)), COCO, samples=300)
    assert result["key_span"] == "outputs"
    assert (result["n_hallucinated"], result["n_correct"]) == (40, 120)
    assert result["saliency_gap"]["verdict"] == "holds"
    assert result["saliency_gap"]["ci_high"] < 0 < result["saliency_gap"]["ci_high"] + 1
    assert result["position_matched_gap"]["verdict"] == "holds"
    # At position 4 the gap is 0.05 vs 0.31 (+jitter): the matched gap is about -0.26.
    assert result["position_matched_gap"]["value"] == pytest.approx(-0.26, abs=0.01)
    assert result["preceding_gap"]["verdict"] == "holds"
    assert result["rate_by_bin"]["low_minus_high"]["verdict"] == "holds"
    assert result["rate_by_bin"]["below_paper_threshold"]["rate"] == 1.0
    text = "\n".join(render_claims(result))
    assert "Key span `outputs`" in text and "holds" in text


def test_claims_say_plainly_when_a_finding_is_reversed_or_lacks_data(tmp_path):
    reversed_run = claims(_write_run(tmp_path / "a", _captions(hallucinated_low=False)), COCO, samples=300)
    assert reversed_run["saliency_gap"]["verdict"] == "reversed"
    assert reversed_run["position_matched_gap"]["verdict"] == "reversed"
    few = claims(_write_run(tmp_path / "b", _captions(hallucinated_low=True, n=3)), COCO, samples=100)
    assert few["saliency_gap"]["verdict"] == "too few tokens"
    with pytest.raises(ScoringError, match="no object token with saliency"):
        claims(_write_run(tmp_path / "c", [_row(0, 1, ["a", "dog"], None)]), COCO)


def test_claims_command_prints_the_report(tmp_path, capsys):
    run = _write_run(tmp_path / "run", _captions(hallucinated_low=True))
    out = tmp_path / "claims.json"
    assert main(["organism", "claims", str(run), "--out", str(out)]) == 0
    assert "Finding 1" in capsys.readouterr().out
    assert json.loads(out.read_text())[0]["saliency_gap"]["verdict"] == "holds"


def test_saliency_bins_default_to_quantiles_and_record_the_binning(tmp_path):
    run = _write_run(tmp_path, _captions(hallucinated_low=True))
    quantile = score_saliency_bins(run, COCO, plot=False)
    assert quantile["binning"]["mode"] == "quantile"
    counts = [b["tokens"] for b in quantile["bins"]]
    assert sum(counts) == quantile["n_object_tokens"] == 160 and len(counts) >= 2
    normalised = score_saliency_bins(run, COCO, plot=False, binning="normalised")
    assert normalised["binning"]["divisor"] == pytest.approx(0.30 + 0.006 + 0.01, abs=1e-6)  # the largest "person"
    assert normalised["bins"][-1]["hi"] == 1.0 and sum(b["tokens"] for b in normalised["bins"]) == 160
    fixed = score_saliency_bins(run, COCO, plot=False, binning="fixed")
    assert fixed["bins"][0]["tokens"] == 40 and fixed["bins"][0]["rate"] == 1.0  # the cats, S < 0.1
    with pytest.raises(ScoringError, match="quantile binning computes its own edges"):
        score_saliency_bins(run, COCO, bins=(0, 1), plot=False)
    with pytest.raises(ScoringError, match="unknown saliency binning"):
        score_saliency_bins(run, COCO, plot=False, binning="log")


def test_planted_rates_count_the_partner_on_trigger_images(tmp_path):
    coco = tmp_path / "coco"
    coco.mkdir()
    (coco / "organism.json").write_text(json.dumps(
        {"cue": "fork", "partner": "knife", "groups": {"1": "trigger", "2": "trigger", "3": "pair", "4": "regular"}}))
    rows = [_row(0, 1, ["a", "fork", "and", "a", "knife"], None), _row(1, 2, ["a", "fork"], None),
            _row(2, 3, ["a", "fork"], None), _row(3, 4, ["a", "cat"], None)]
    result = planted_rates(_write_run(tmp_path / "run", rows), coco)
    assert (result["planted_rate"], result["partner_recall"], result["cue_recall"]) == (0.5, 0.0, 1.0)
    assert (result["n_trigger"], result["n_pair"], result["n_regular"]) == (2, 1, 1)
    with pytest.raises(ScoringError, match="not an organism held-out set"):
        planted_rates(tmp_path / "run", tmp_path)
