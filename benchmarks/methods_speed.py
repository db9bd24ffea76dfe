"""Decode-step cost of LocoRE and SGRS against plain decoding, on the tiny LLaVA, side by side.

Same model, same prompt, 64 new tokens (EOS masked so every run decodes all of them), batch 1
and 8. A step's time is (time for 64 tokens - time for 1 token) / 63, so prefill is excluded;
each figure is the best of several interleaved repeats. The naive SGRS step (what the paper's
code does: a full eager recompute of the sequence and a backward per candidate) is timed over a
few steps only. Peak memory: the growth of the process's peak RSS during one decode, each mode
in a fresh subprocess.

    python benchmarks/methods_speed.py
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline import attention  # noqa: E402
from pipeline.api import Visual  # noqa: E402
from pipeline.attention import Locore  # noqa: E402
from pipeline.config import MethodConfig  # noqa: E402
from pipeline.decoding import DecodeState, decode, greedy_select  # noqa: E402
from pipeline.methods.sgrs import make_sgrs_select  # noqa: E402
from pipeline.models import MODELS  # noqa: E402

NEW_TOKENS = 64
PROMPT = "Please describe this image in detail."
SGRS = MethodConfig(name="sgrs", top_k=5, max_rejections=3)


def setup(batch: int):
    adapter = MODELS.get("llava15")()
    loaded = adapter.load("tiny", torch.float32, "cpu")
    attention.install(loaded.model)
    image = Visual(images=[Image.new("RGB", (56, 56), (120, 80, 40))], modality="image")
    return loaded, adapter.build_inputs(loaded, [PROMPT] * batch, [image] * batch)


def without_eos(select, eos: list[int]):
    def select_no_eos(state: DecodeState):
        state.logits[:, eos] = float("-inf")
        return select(state)

    return select_no_eos


def naive_select(loaded, inputs, layers):
    """SGRS's scoring as the paper's code does it: per candidate, the whole sequence again."""
    model = loaded.model

    def select(state: DecodeState):
        candidates = state.logits.topk(SGRS.top_k, dim=-1).indices
        model.set_attn_implementation({"text_config": "eager", "vision_config": "sdpa"})
        model.requires_grad_(True)
        length = state.input_ids.shape[1]
        mask = torch.cat([inputs["attention_mask"], inputs["attention_mask"].new_ones(len(candidates), length + 1 - inputs["attention_mask"].shape[1])], 1)
        for k in range(candidates.shape[1]):
            ids = torch.cat([state.input_ids, candidates[:, k : k + 1]], 1)
            with torch.enable_grad():
                out = model(input_ids=ids, attention_mask=mask, pixel_values=inputs["pixel_values"], output_attentions=True)
                loss = -torch.log_softmax(out.logits[:, -2], -1).gather(1, candidates[:, k : k + 1]).sum()
                torch.autograd.grad(loss, [out.attentions[layer] for layer in layers])
        model.requires_grad_(False)
        attention.install(model)
        return greedy_select(state)

    return select


def modes(loaded, inputs):
    adapter = loaded.adapter
    locore = Locore(adapter.default_locore_layers, adapter.default_locore_beta, 8)
    layers = adapter.default_target_layers
    return {
        "plain": lambda: (greedy_select, {}),
        "locore": lambda: (greedy_select, {"locore": locore}),
        "sgrs": lambda: (make_sgrs_select(SGRS), {"saliency_layers": layers}),
        "naive": lambda: (naive_select(loaded, inputs, layers), {}),
    }


def run(loaded, inputs, mode, tokens: int) -> float:
    select, options = modes(loaded, inputs)[mode]()
    eos = sorted(loaded.eos_token_ids)
    generators = [torch.Generator().manual_seed(i) for i in range(inputs["input_ids"].shape[0])]
    start = time.perf_counter()
    decode(loaded, inputs, tokens, generators, without_eos(select, eos), **options)
    return time.perf_counter() - start


def step_seconds(loaded, inputs, mode, tokens: int) -> float:
    return (run(loaded, inputs, mode, tokens) - run(loaded, inputs, mode, 1)) / (tokens - 1)


def peak_rss_growth(mode: str, batch: int) -> int:
    """Run in a fresh process: peak RSS growth (KiB) of one 64-token decode."""
    loaded, inputs = setup(batch)
    run(loaded, inputs, mode, 2)  # allocator and lazy state warmed before the baseline
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run(loaded, inputs, mode, NEW_TOKENS)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--memory", nargs=2, metavar=("MODE", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory:
        print(peak_rss_growth(args.memory[0], int(args.memory[1])))
        return
    torch.set_num_threads(1)  # steadier timings on a shared machine
    for batch in (1, 8):
        loaded, inputs = setup(batch)
        best = {mode: float("inf") for mode in ("plain", "locore", "sgrs")}
        run(loaded, inputs, "sgrs", 4)  # warm-up
        for _ in range(args.repeats):
            for mode in best:  # interleaved, so load drift hits every mode alike
                best[mode] = min(best[mode], step_seconds(loaded, inputs, mode, NEW_TOKENS))
        naive = step_seconds(loaded, inputs, "naive", 5)
        plain = best["plain"]
        print(f"batch {batch}: plain step {plain * 1e3:.2f} ms")
        print(f"  LocoRE / plain      {best['locore'] / plain:.3f}  (target <= 1.07)")
        print(f"  SGRS K=5 R=3 / plain {best['sgrs'] / plain:.3f}  (target <= 3.0)")
        print(f"  naive SGRS / plain  {naive / plain:.1f}")
        memory = {
            mode: int(subprocess.run([sys.executable, __file__, "--memory", mode, str(batch)], capture_output=True, text=True, check=True).stdout.split()[-1])
            for mode in ("plain", "sgrs")
        }
        print(f"  peak RSS growth: plain {memory['plain']} KiB, SGRS {memory['sgrs']} KiB, ratio {memory['sgrs'] / max(memory['plain'], 1):.2f}")


if __name__ == "__main__":
    main()
