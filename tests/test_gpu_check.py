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
    assert "greedy loop vs generate 100.0% tokens equal" in out
    error = float(re.search(r"LocoRE attention vs float64 eager max abs error (\S+)", out).group(1))
    assert error < 1e-5
    line = next(line for line in out.splitlines() if "batch 2: per token" in line)
    for name in ("greedy", "locore", "sgrs", "sgrs+locore"):
        assert re.search(rf"\b{re.escape(name)} [\d.]+ ms \([\d.]+x\)", line), line


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_without_cuda_the_real_run_says_what_to_do(capsys):
    assert _gpu_check().main([]) == 2
    assert "no CUDA device visible" in capsys.readouterr().err
