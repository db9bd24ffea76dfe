"""The Table 1 baselines on the shared loop: beam search (= HF's), nucleus sampling, VCD, OPERA and
DoLa. For each: the degenerate setting equals a simpler method token for token on every family,
the step formula equals a naive implementation of its definition, seeded runs repeat exactly,
and the per-token records reach Parquet."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest
import torch
from transformers import RepetitionPenaltyLogitsProcessor, TopPLogitsWarper

from pipeline.config import MethodConfig, build_config
from pipeline.decoding import Stream, top_p_filter
from pipeline.inference import InferenceStage
from pipeline.methods import METHODS
from pipeline.methods.dola import candidate_layers, contrast, divergence, repetition_penalty
from pipeline.methods.opera import column_scores
from pipeline.methods.vcd import diffusion_noise, distorted_inputs, noise_generator, noise_schedule, vcd_logits
from pipeline.models import MODELS
from test_models import batch_for

STEPS = 8


def seeded(n: int = 2, base: int = 5) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(base + i) for i in range(n)]


def run(name: str, method: str, steps: int = STEPS, base: int = 5, **params):
    loaded, inputs = batch_for(name)
    config = MethodConfig(name=method, **params)
    decoder = METHODS.get(method)()
    decoder.prepare(loaded, config)
    return decoder.generate(loaded, inputs, config, steps, seeded(base=base))


def hf_tokens(loaded, inputs, sequences) -> list[list[int]]:
    """generate()'s new tokens per row, up to the first EOS."""
    eos, prompt = loaded.eos_token_ids, inputs["input_ids"].shape[1]
    rows = []
    for row in sequences[:, prompt:].tolist():
        stop = next((i + 1 for i, token in enumerate(row) if token in eos), len(row))
        rows.append(row[:stop])
    return rows


# ---------------------------------------------------------------- beam search


@pytest.mark.parametrize("name", MODELS.names())
def test_beam_equals_hf_beam_search_and_records_its_log_probs(name):
    loaded, inputs = batch_for(name)
    with torch.no_grad():
        reference = loaded.model.generate(
            **inputs, do_sample=False, num_beams=3, max_new_tokens=STEPS, return_dict_in_generate=True, output_scores=True
        )
    generated = run(name, "beam", num_beams=3)
    assert [g.token_ids for g in generated] == hf_tokens(loaded, inputs, reference.sequences)
    # The records are the log-probs the beam scores summed: HF's sequence score is their
    # sum over length ** length_penalty.
    for g, score in zip(generated, reference.sequences_scores):
        np.testing.assert_allclose(sum(g.logprobs) / len(g.logprobs), float(score), rtol=1e-5)


def test_beam_length_penalty_equals_hf_too():
    loaded, inputs = batch_for("llava15")
    with torch.no_grad():
        reference = loaded.model.generate(**inputs, do_sample=False, num_beams=4, length_penalty=0.3, max_new_tokens=STEPS)
    generated = run("llava15", "beam", num_beams=4, length_penalty=0.3)
    assert [g.token_ids for g in generated] == hf_tokens(loaded, inputs, reference)


# ---------------------------------------------------------------- nucleus sampling


def test_top_p_filter_equals_hf_top_p_warper_and_the_definition():
    torch.manual_seed(0)
    logits = torch.randn(3, 50, dtype=torch.float64) * 3
    for top_p in (0.3, 0.9):
        ours = top_p_filter(logits, top_p)
        assert torch.equal(ours, TopPLogitsWarper(top_p)(None, logits.clone()))
        for row in range(3):  # the smallest most-likely set with mass >= top_p
            probs = logits[row].softmax(-1)
            order = probs.argsort(descending=True)
            size = int((probs[order].cumsum(0) < top_p).sum()) + 1
            assert set(torch.isfinite(ours[row]).nonzero().flatten().tolist()) == set(order[:size].tolist())


@pytest.mark.parametrize("name", MODELS.names())
def test_sample_with_top_p_one_is_sampling_and_small_top_p_is_greedy(name):
    plain = run(name, "sample", temperature=0.8)
    assert [g.token_ids for g in run(name, "sample", temperature=0.8, top_p=1.0)] == [g.token_ids for g in plain]
    assert [g.token_ids for g in run(name, "sample", temperature=0.8)] == [g.token_ids for g in plain]  # seeded
    tiny_nucleus = run(name, "sample", top_p=1e-6)
    assert [g.token_ids for g in tiny_nucleus] == [g.token_ids for g in run(name, "greedy")]
    assert all(lp == 0.0 for g in tiny_nucleus for lp in g.logprobs)  # one token left: p = 1


# ---------------------------------------------------------------- VCD


def test_vcd_noise_is_ddpm_forward_diffusion_with_vcds_schedule():
    betas = [1 / (1 + math.exp(-x)) * (0.5e-2 - 1e-5) + 1e-5 for x in np.linspace(-6, 6, 1000)]
    alpha_bar = np.cumprod([1 - b for b in betas])
    np.testing.assert_allclose(noise_schedule().numpy(), alpha_bar, rtol=1e-5)
    pixels = torch.rand(2, 3, 8, 8)
    noisy = diffusion_noise(pixels, 500, torch.Generator().manual_seed(3))
    eps = torch.randn(pixels.shape, generator=torch.Generator().manual_seed(3))
    expected = math.sqrt(alpha_bar[500]) * pixels + math.sqrt(1 - alpha_bar[500]) * eps
    torch.testing.assert_close(noisy, expected, rtol=1e-5, atol=1e-5)


def test_vcd_step_equals_the_papers_definition():
    torch.manual_seed(1)
    logits, distorted = torch.randn(2, 40) * 2, torch.randn(2, 40) * 2
    alpha, beta = 1.0, 0.1
    ours = vcd_logits(logits, distorted, alpha, beta)
    for row in range(2):
        probs = logits[row].softmax(-1)
        head = probs >= beta * probs.max()
        naive = torch.where(head, (1 + alpha) * logits[row] - alpha * distorted[row], torch.tensor(float("-inf")))
        torch.testing.assert_close(ours[row].softmax(-1), naive.softmax(-1))
    assert torch.equal(vcd_logits(logits, distorted, 0.0, 0.0), logits)


@pytest.mark.parametrize("name", MODELS.names())
def test_vcd_with_alpha_and_beta_zero_is_sampling_and_the_distorted_stream_is_a_real_forward(name):
    sampled = run(name, "sample")
    vcd = run(name, "vcd", cd_alpha=0.0, cd_beta=0.0)
    assert [g.token_ids for g in vcd] == [g.token_ids for g in sampled]
    assert [g.logprobs for g in vcd] == [g.logprobs for g in sampled]
    assert [g.token_ids for g in run(name, "vcd")] == [g.token_ids for g in run(name, "vcd")]  # seeded

    loaded, inputs = batch_for(name)
    distorted = distorted_inputs(loaded, inputs, MethodConfig(name="vcd"), seeded())["distorted"]
    visual = [k for k in inputs if k.startswith("pixel_values")]
    assert visual and all(not torch.equal(distorted[k], inputs[k]) for k in visual)
    stream = Stream(loaded, distorted)
    with torch.no_grad():
        stream.prefill()
        fresh = loaded.model(**distorted).logits[:, -1]
        clean = loaded.model(**inputs).logits[:, -1]
    torch.testing.assert_close(stream.logits, fresh, rtol=1e-4, atol=1e-4)  # float32 rounding of two paths
    assert not torch.allclose(fresh, clean)


def test_vcd_noise_of_a_sample_does_not_depend_on_its_batch_or_draw_from_its_sampler():
    loaded, inputs = batch_for("llava15")
    generators = seeded()
    state = generators[1].get_state()
    both = distorted_inputs(loaded, inputs, MethodConfig(name="vcd"), generators)["distorted"]["pixel_values"]
    assert torch.equal(generators[1].get_state(), state)
    alone = diffusion_noise(inputs["pixel_values"][1:], 500, noise_generator(seeded()[1]))
    assert torch.equal(both[1:], alone)


def test_vcd_contrast_changes_tokens_and_records_the_plausible_set():
    sampled, vcd = run("llava15", "vcd", cd_alpha=0.0, cd_beta=0.0), run("llava15", "vcd", cd_alpha=3.0, cd_beta=0.01)
    assert [g.token_ids for g in vcd] != [g.token_ids for g in sampled]
    for g in vcd:
        plausible = g.method_fields["plausible"]
        assert len(plausible) == len(g.token_ids) and all(n >= 1 for n in plausible)


# ---------------------------------------------------------------- OPERA


def test_opera_column_scores_equal_the_codes_loop():
    torch.manual_seed(2)
    window = torch.rand(3, 4, 6, 6).tril() / 3
    ours = column_scores(window, 50.0)
    for j in range(6):  # as opera_beam_search: 1e-7 * prod over rows >= j of scale * attn, in float16
        naive = (1e-7 * (50.0 * window[..., j:, j]).prod(-1)).to(torch.float16).float()
        assert torch.equal(ours[..., j], naive)


@pytest.mark.parametrize("name", MODELS.names())
def test_opera_without_penalty_and_rollback_over_the_vocabulary_is_beam_search(name):
    loaded, inputs = batch_for(name)
    vocab = loaded.model.config.get_text_config().vocab_size
    with torch.no_grad():
        reference = loaded.model.generate(**inputs, do_sample=False, num_beams=2, max_new_tokens=3)
    # Every token a candidate: one look-ahead forward per vocabulary entry and step, hence 3 steps.
    opera = run(name, "opera", steps=3, num_beams=2, penalty_weights=0.0, rollback=False, num_attn_candidates=vocab)
    beam = run(name, "beam", steps=3, num_beams=2)
    assert [g.token_ids for g in opera] == [g.token_ids for g in beam] == hf_tokens(loaded, inputs, reference)
    for o, b in zip(opera, beam):
        np.testing.assert_allclose(o.logprobs, b.logprobs, atol=1e-4)


@pytest.mark.parametrize("name", ["llava15", "qwen2_vl"])
def test_opera_penalty_and_rollback_change_the_beams_repeat_and_are_recorded(name):
    params = dict(num_beams=3, threshold=2)
    first = run(name, "opera", steps=20, **params)
    assert [g.token_ids for g in first] == [g.token_ids for g in run(name, "opera", steps=20, **params)]
    beam = run(name, "beam", steps=20, num_beams=3)
    assert [g.token_ids for g in first] != [g.token_ids for g in beam]
    for g in first:
        assert 0 < len(g.token_ids) <= 20 and len(g.logprobs) == len(g.token_ids)
        assert all(lp <= 0 for lp in g.logprobs)
        assert g.method_fields["rollbacks"][0] >= 0
    if name == "qwen2_vl":  # measured: this prompt's first sample rolls back once at threshold 2
        assert first[0].method_fields["rollbacks"] == [1]


# ---------------------------------------------------------------- DoLa


def test_dola_layer_buckets_follow_hf():
    assert candidate_layers("high", 32, False) == list(range(16, 32, 2))
    assert candidate_layers("low", 32, False) == list(range(0, 16, 2))
    assert candidate_layers("low", 32, True) == list(range(2, 16, 2))
    assert candidate_layers("high", 60, False) == list(range(40, 60, 2))
    assert candidate_layers((3, 5, 40), 16, False) == [3, 5]


def test_dola_step_equals_its_definition():
    torch.manual_seed(3)
    final, premature = torch.randn(2, 30, dtype=torch.float64), torch.randn(2, 30, dtype=torch.float64)
    p, q = final.softmax(-1), premature.softmax(-1)
    m = (p + q) / 2
    naive_divergence = 0.5 * ((m * (m.log() - p.log())).sum(-1) + (m * (m.log() - q.log())).sum(-1)) / 30
    torch.testing.assert_close(divergence(final, premature), naive_divergence)
    ours = contrast(final, premature, 0.1)
    for row in range(2):
        head = p[row] >= 0.1 * p[row].max()
        naive = torch.where(head, p[row].log() - q[row].log(), torch.tensor(float("-inf"), dtype=torch.float64))
        torch.testing.assert_close(ours[row], naive)
    ids = torch.tensor([[1, 4, 4, 7], [0, 2, 3, 3]])
    torch.testing.assert_close(repetition_penalty(final, ids, 1.2), RepetitionPenaltyLogitsProcessor(1.2)(ids, final.clone()))


@pytest.mark.parametrize("name", MODELS.names())
def test_dola_with_the_final_layer_as_premature_layer_is_greedy(name):
    loaded, _ = batch_for(name)
    last = loaded.model.config.get_text_config().num_hidden_layers
    dola = run(name, "dola", dola_layers=(last,), repetition_penalty=1.0)
    assert [g.token_ids for g in dola] == [g.token_ids for g in run(name, "greedy")]
    assert all(layer == last for g in dola for layer in g.method_fields["premature_layer"])


@pytest.mark.parametrize("name", ["llava15", "internvl"])
def test_dola_contrasts_the_most_distant_candidate_layer_and_repeats(name):
    loaded, _ = batch_for(name)
    layers = candidate_layers("high", loaded.model.config.get_text_config().num_hidden_layers, False)
    first = run(name, "dola")
    assert [g.token_ids for g in first] == [g.token_ids for g in run(name, "dola")]
    assert [g.token_ids for g in first] != [g.token_ids for g in run(name, "greedy")]
    for g in first:
        assert set(g.method_fields["premature_layer"]) <= set(layers)


# ---------------------------------------------------------------- records reach Parquet


def test_method_records_reach_the_parquet_row(synth):
    from pipeline.benchmarks import BENCHMARKS

    config = build_config(
        {"benchmark": {"name": "chair", "root": str(synth.coco_root), "limit": 2}, "generation": {"max_new_tokens": 4}},
        ["method.name=dola"],
    )
    samples = list(BENCHMARKS.get("chair")().samples(config.benchmark, config.seed))[:2]
    stage = InferenceStage([(config.model_dump_json(), "v")])
    batch = pa.Table.from_pylist([{**s.to_row(), "run_id": config.run_id} for s in samples])
    rows = stage(batch).to_pylist()
    for row in rows:
        assert row["error"] is None
        fields = json.loads(row["method_fields"])
        assert len(fields["premature_layer"]) == row["n_generated"] == len(row["logprobs"])


def test_table1_grid_has_the_papers_methods_and_benchmarks():
    from conftest import REPO_ROOT
    from jobs.grid_config import load_grid

    cells = load_grid(REPO_ROOT / "configs/grids/table1.yaml").cells()
    assert len(cells) == 7 * 3
    assert {c.config.method.name for c in cells} == {"greedy", "beam", "vcd", "opera", "dola", "locore", "sgrs+locore"}
    assert {c.config.benchmark.name for c in cells} == {"pope", "chair", "mme"}
    assert {c.config.model.name for c in cells} == {"llava15"}
    assert len({c.config.run_id for c in cells}) == 21
