"""benchmarks/gpu_check.py runs: its --dry-run (CPU, width 64) goes through every check and
every method, so the script is ready for the first CUDA machine."""

from __future__ import annotations

import importlib.util
import re

import pytest
import torch

from conftest import REPO_ROOT


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO_ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_dry_run_checks_equivalence_and_times_every_method(capsys):
    assert _gpu_check().main(["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "greedy loop vs generate: 100.0% tokens equal" in out
    errors = re.search(r"keys 640: fast (\S+), generic (\S+); heads 4/2 keys 653: fast (\S+), generic (\S+)", out)
    assert errors and all(float(e) < 1e-5 for e in errors.groups()), out
    assert int(re.search(r"LocoRE fast path taken in (\d+) attention calls", out).group(1)) > 0
    saliency = re.search(r"SGRS saliency vs naive recompute, max relative error: (\S+) \(with LocoRE (\S+)\)", out)
    assert saliency and all(float(e) < 1e-5 for e in saliency.groups()), out
    line = next(line for line in out.splitlines() if "batch 2: per decode step" in line)
    for name in ("greedy", "locore", "locore[generic]", "sgrs", "sgrs+locore"):
        assert re.search(rf"(^|\s){re.escape(name)} [\d.]+ ms \([\d.]+x\)", line.split("step ", 1)[1]), line


def test_a_failing_check_is_reported_and_the_others_still_run(capsys, monkeypatch):
    """One GPU lease is short: a check that breaks there must not cost the other figures."""
    module = _gpu_check()

    def broken(*args, **kwargs):
        raise RuntimeError("attn_bias is not correctly aligned")

    monkeypatch.setattr(module, "saliency_error", broken)
    assert module.main(["--dry-run"]) == 1
    captured = capsys.readouterr()
    assert "[float32] saliency: FAILED" in captured.out and "attn_bias is not correctly aligned" in captured.out
    assert "batch 2: per decode step greedy" in captured.out
    assert "1 check(s) failed: [float32] saliency" in captured.err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_without_cuda_the_real_run_says_what_to_do(capsys):
    assert _gpu_check().main([]) == 2
    assert "no CUDA device visible" in capsys.readouterr().err


def test_a_divergence_from_generate_reports_its_step_gap_and_rank():
    first_divergence = _gpu_check().first_divergence
    logits = [torch.tensor([0.0, 5.0, 1.0]), torch.tensor([2.0, 2.03125, 1.5]), torch.tensor([9.0, 0.0, 0.0])]
    assert first_divergence([1, 1, 0], [1, 1, 0], logits) is None
    # At step 1 the reference took token 1 (2.03125), ours token 0 (2.0): its #2, 1/32 behind.
    assert first_divergence([1, 0, 0], [1, 1, 0], logits) == (
        "at token 1: generate's top-2 logit gap 0.0312 (logit 2.03), ours its #2")
    assert first_divergence([1, 1, 2], [1, 1, 0], logits).endswith("ours its #2")  # a tie takes its best rank
