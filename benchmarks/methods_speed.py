"""Decode-step cost of LocoRE and SGRS against plain decoding, at two model widths, side by side.

Same model, same prompt, 64 new tokens (EOS masked so every run decodes all of them), batch 1
and 8, at two widths: the tiny LLaVA (hidden 64, 16 layers: a step is Python dispatch) and a
random LLaVA whose language model has Llama-7B's width cut to 4 layers (hidden 4096: a step is
matrix work, as on real models; 16 tokens, fewer repeats). A step's time is the median interval
between successive selector calls of one decode (one selector call plus the forward of its
token; prefill never enters); each figure is the best of several interleaved repeats, on two clocks: the process's CPU time
(`time.process_time`, 1 thread; it does not count time spent waiting for a core, so it is the
steadier figure on a shared machine) and wall time. `locore (generic LSE)` is the same LocoRE
with the CPU kernel's LSE switched off (the extra q.K over every key that other devices and
differentiable forwards use), for comparison. The naive SGRS step (what the paper's code does: a
full eager recompute of the sequence and a backward per candidate) is timed over a few steps.

Peak memory of a step: torch.profiler with `profile_memory=True` records every CPU allocation
and free; replaying them between two step markers gives the step's peak of bytes allocated on
top of what was live when it began (its transient memory: activations, the saliency graph and
its batched backward, the new cache). Printed with the resident tensors (weights + KV cache) the
step starts from, so "total" = resident + transient.

The baselines (`--baselines`, on by default) are timed the same way through their registered
methods, over 32 tokens with EOS disabled: beam search (5 beams), VCD (a second stream: about two
forwards), OPERA (5 beams, 5 attention candidates: a look-ahead forward per candidate, rollback
on as by default) and DoLa (the head on every candidate layer). A beam method's step decodes all
N beams of every sample, so its ratio is against one plain step of the same samples.

    python benchmarks/methods_speed.py
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from PIL import Image
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline import attention  # noqa: E402
from pipeline.api import Visual  # noqa: E402
from pipeline.attention import Locore  # noqa: E402
from pipeline.config import MethodConfig  # noqa: E402
from pipeline.methods import METHODS  # noqa: E402
from pipeline.decoding import DecodeState, decode, greedy_select  # noqa: E402
from pipeline.methods.sgrs import make_sgrs_select  # noqa: E402
from pipeline.models import MODELS  # noqa: E402
from pipeline.models.llava import tiny_llava  # noqa: E402
from pipeline.model_inputs import build_inputs  # noqa: E402
from transformers import LlamaConfig, LlavaConfig, LlavaForConditionalGeneration  # noqa: E402

NEW_TOKENS = 64
PROMPT = "Please describe this image in detail."
SGRS = MethodConfig(name="sgrs", top_k=5, max_rejections=3)


WIDE_LAYERS = 4
WIDE_TARGET_LAYERS = (1,)  # 3 of 4 layers above it, as LLaVA-7B's 6-8 have 23-25 of 32 above
WIDE_LOCORE_LAYERS = (1, 1)  # 1 of 4 layers, as LLaVA-7B's 9-14 are 6 of 32


def wide_llava():
    """The tiny LLaVA with a Llama-7B-shaped language model cut to WIDE_LAYERS layers: hidden
    4096, MLP 11008, 32 heads, vocab 32000 (random weights; about 1.1 B parameters, 4.3 GB in
    float32), so a decode step is matrix work rather than Python dispatch."""
    model, processor = tiny_llava()
    text = model.config.text_config.to_dict()
    text.update(hidden_size=4096, intermediate_size=11008, num_hidden_layers=WIDE_LAYERS, num_attention_heads=32,
                num_key_value_heads=32, vocab_size=32000, initializer_range=0.02)
    config = LlavaConfig(vision_config=model.config.vision_config, text_config=LlamaConfig(**text),
                         image_token_id=model.config.image_token_id, vision_feature_layer=-2,
                         vision_feature_select_strategy="default")
    return LlavaForConditionalGeneration(config).eval(), processor


def setup(batch: int, width: str = "tiny"):
    """(loaded model, inputs, LocoRE layers, saliency target layers) of the tiny or 7B-wide LLaVA."""
    adapter = MODELS.get("llava15")()
    if width == "7b":
        adapter.build_tiny = wide_llava
    loaded = adapter.load("tiny", torch.float32, "cpu")
    attention.install(loaded.model)
    image = Visual(images=[Image.new("RGB", (56, 56), (120, 80, 40))], modality="image")
    layers = ((adapter.default_locore_layers, adapter.default_target_layers) if width == "tiny"
              else (WIDE_LOCORE_LAYERS, WIDE_TARGET_LAYERS))
    return loaded, build_inputs(loaded, [PROMPT] * batch, [image] * batch), *layers


def without_eos(select, eos: list[int]):
    def select_no_eos(state: DecodeState):
        state.logits[:, eos] = float("-inf")
        return select(state)

    return select_no_eos


def autograd_head(select):
    """SGRS with the linear-head shortcut switched off: the K candidates' backward runs through
    the head by autograd, as for a head that is not a plain linear map."""
    def select_through_head(state: DecodeState):
        state.capture.head_checked, state.capture.head_weight = True, None
        return select(state)

    return select_through_head


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


def modes(loaded, inputs, locore_layers, layers):
    locore = Locore(locore_layers, loaded.adapter.default_locore_beta, 8)
    return {
        "plain": lambda: (greedy_select, {}),
        "locore": lambda: (greedy_select, {"locore": locore}),
        "locore_generic": lambda: (greedy_select, {"locore": locore}),
        "sgrs": lambda: (make_sgrs_select(SGRS), {"saliency_layers": layers}),
        "sgrs_autograd": lambda: (autograd_head(make_sgrs_select(SGRS)), {"saliency_layers": layers}),
        "naive": lambda: (naive_select(loaded, inputs, layers), {}),
    }


def run(loaded, inputs, mode, tokens: int, select_wrapper=None, layers=None) -> tuple[float, float]:
    """One decode of `tokens` tokens: (wall seconds, process CPU seconds). `layers`: (LocoRE
    layers, saliency target layers), the adapter's defaults when None."""
    layers = layers or (loaded.adapter.default_locore_layers, loaded.adapter.default_target_layers)
    select, options = modes(loaded, inputs, *layers)[mode]()
    if select_wrapper is not None:
        select = select_wrapper(select)
    eos = sorted(loaded.eos_token_ids)
    generators = [torch.Generator().manual_seed(i) for i in range(inputs["input_ids"].shape[0])]
    # locore_generic: the LSE from an extra q.K over every key
    with attention.generic_locore(mode == "locore_generic"):
        wall, cpu = time.perf_counter(), time.process_time()
        decode(loaded, inputs, tokens, generators, without_eos(select, eos), **options)
        return time.perf_counter() - wall, time.process_time() - cpu


def step_seconds(loaded, inputs, mode, tokens: int, layers=None) -> tuple[float, float]:
    """Decode-step (wall, CPU) seconds: the median interval between successive selector calls
    of one decode (a selector call plus the forward of its token), so prefill never enters."""
    marks: list[tuple[float, float]] = []

    def marked(select):
        def select_marked(state: DecodeState):
            marks.append((time.perf_counter(), time.process_time()))
            return select(state)

        return select_marked

    run(loaded, inputs, mode, tokens, marked, layers)
    intervals = [(b[0] - a[0], b[1] - a[1]) for a, b in itertools.pairwise(marks)]
    return tuple(statistics.median(interval[clock] for interval in intervals) for clock in range(2))


def step_memory(loaded, inputs, mode, tokens: int = 6, layers=None) -> tuple[int, int]:
    """(resident bytes at a step's start, peak transient bytes of the step), the latter the max
    over the whole steps 2..tokens-1 of one decode, from the profiler's allocation events."""
    resident = []

    def marked(select):
        def select_marked(state: DecodeState):
            with record_function("halleval::step"):
                cache = state.model_kwargs.get("cache", state.model_kwargs.get("past_key_values"))
                tensors = [t for layer in cache.layers for t in (layer.keys, layer.values)]
                tensors += list(loaded.model.parameters()) + list(loaded.model.buffers())
                resident.append(sum(t.numel() * t.element_size() for t in tensors))
            return select(state)

        return select_marked

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run(loaded, inputs, mode, tokens, marked, layers)
    events = prof.profiler.kineto_results.events()
    marks = sorted(e.start_ns() for e in events if e.name() == "halleval::step")
    allocations = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]")
    peak = 0
    for begin, end in itertools.pairwise(marks[1:]):  # whole decode steps (a forward + a select)
        live = 0
        for at, nbytes in allocations:
            if begin <= at < end:
                live += nbytes
                peak = max(peak, live)
    return resident[-1], peak


BASELINE_TOKENS = 32
BASELINES = {
    "greedy": MethodConfig(name="greedy"),
    "beam": MethodConfig(name="beam", num_beams=5),
    "vcd": MethodConfig(name="vcd"),
    "opera": MethodConfig(name="opera", num_beams=5),
    "dola": MethodConfig(name="dola"),
}


def method_run(loaded, inputs, params, tokens: int) -> tuple[float, float]:
    """One registered method's decode of `tokens` tokens with EOS disabled: (wall, CPU) seconds."""
    method = METHODS.get(params.name)()
    method.prepare(loaded, params)
    config = loaded.model.generation_config
    eos, config.eos_token_id = config.eos_token_id, -1  # no token ends a row or a beam
    generators = [torch.Generator().manual_seed(i) for i in range(inputs["input_ids"].shape[0])]
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        method.generate(loaded, inputs, params, tokens, generators)
        return time.perf_counter() - wall, time.process_time() - cpu
    finally:
        config.eos_token_id = eos


def baseline_ratios(loaded, inputs, repeats: int) -> None:
    """Prints each baseline's step time relative to a greedy step (best of interleaved repeats)."""
    best = {name: [float("inf"), float("inf")] for name in BASELINES}
    for _ in range(repeats):
        for name, params in BASELINES.items():
            long = method_run(loaded, inputs, params, BASELINE_TOKENS)
            short = method_run(loaded, inputs, params, 1)
            for clock in range(2):
                best[name][clock] = min(best[name][clock], (long[clock] - short[clock]) / (BASELINE_TOKENS - 1))
    plain = best["greedy"]
    for name in BASELINES:
        if name != "greedy":
            print(f"  {name:5s} / plain               CPU {best[name][1] / plain[1]:.2f}  wall {best[name][0] / plain[0]:.2f}")


WIDTHS = {  # width -> (new tokens per timed decode, repeats divisor); the wide model is ~100x slower
    "tiny": (NEW_TOKENS, 1),
    "7b": (16, 2),
}


def paper_methods(width: str, batch: int, repeats: int, naive: bool) -> None:
    """Prints LocoRE's, SGRS's (and the naive SGRS's) step time and SGRS's peak memory against a
    plain step, for one width and batch size."""
    loaded, inputs, locore_layers, target_layers = setup(batch, width)
    layers = (locore_layers, target_layers)
    tokens, divisor = WIDTHS[width]
    timed = ("plain", "locore", "locore_generic", "sgrs", "sgrs_autograd")
    best = {mode: [float("inf"), float("inf")] for mode in timed}
    run(loaded, inputs, "sgrs", 4, layers=layers)  # warm-up
    run(loaded, inputs, "locore", 4, layers=layers)
    for _ in range(max(1, repeats // divisor)):
        for mode in timed:  # interleaved, so load drift hits every mode alike
            for clock, seconds in enumerate(step_seconds(loaded, inputs, mode, tokens, layers)):
                best[mode][clock] = min(best[mode][clock], seconds)
    plain = best["plain"]

    def ratio(mode: str) -> str:
        return f"CPU {best[mode][1] / plain[1]:.3f}  wall {best[mode][0] / plain[0]:.3f}"

    print(f"{width} batch {batch}: plain step CPU {plain[1] * 1e3:.2f} ms, wall {plain[0] * 1e3:.2f} ms "
          f"({tokens} tokens, LocoRE layers {locore_layers}, saliency layers {target_layers})")
    print(f"  LocoRE / plain                {ratio('locore')}  (target <= 1.07)")
    print(f"  LocoRE generic LSE / plain    {ratio('locore_generic')}")
    print(f"  SGRS K=5 R=3 / plain          {ratio('sgrs')}  (target <= 2.5)")
    print(f"  SGRS, backward through head   {ratio('sgrs_autograd')}")
    if naive:
        slow = step_seconds(loaded, inputs, "naive", 5, layers)
        print(f"  naive SGRS / plain            CPU {slow[1] / plain[1]:.1f}  wall {slow[0] / plain[0]:.1f}")
    memory = {mode: step_memory(loaded, inputs, mode, layers=layers) for mode in ("plain", "locore", "sgrs")}
    resident = memory["plain"][0]
    for mode, (_, transient) in memory.items():
        print(f"  peak memory {mode:6s}: transient {transient / 2**20:9.2f} MiB, total {(resident + transient) / 2**20:.1f} MiB")
    print(
        f"  peak memory SGRS / plain: transient {memory['sgrs'][1] / memory['plain'][1]:.2f}, "
        f"total {(resident + memory['sgrs'][1]) / (resident + memory['plain'][1]):.4f} (resident {resident / 2**20:.1f} MiB)"
    )


ATTENTION_SHAPES = (  # (batch, heads, KV heads, head dim, keys): the tiny model's, Llama-7B's, a GQA model's
    (1, 4, 2, 16, 100), (8, 4, 2, 16, 100), (1, 32, 32, 128, 80), (8, 32, 32, 128, 80),
    (1, 32, 32, 128, 600), (8, 32, 32, 128, 600), (1, 32, 8, 128, 600), (8, 32, 8, 128, 600),
)


def attention_paths(repeats: int = 200) -> None:
    """One LocoRE decode-query attention call, CPU fast path (flash kernel's LSE) against the
    generic path (SDPA, then q.K over every key for the LSE), per shape; best of two rounds."""
    print("LocoRE attention call, fast path / generic path (one decode query, w_s = 8):")
    for batch, heads, kv_heads, dim, keys in ATTENTION_SHAPES:
        module = SimpleNamespace(head_dim=dim, layer_idx=0, is_causal=True, num_key_value_groups=heads // kv_heads,
                                 training=False)
        query, key, value = torch.randn(batch, heads, 1, dim), torch.randn(batch, kv_heads, keys, dim), torch.randn(batch, kv_heads, keys, dim)
        mask = torch.zeros(batch, 1, 1, keys)
        plan = attention.AttentionPlan(output_start=keys - 20, locore=Locore((0, 0), 0.15, 8), capture=None)
        best = {"fast": float("inf"), "generic": float("inf")}
        for path in ("fast", "generic") * 2:
            with attention.active(plan), attention.generic_locore(path == "generic"):
                attention.halleval_attention(module, query, key, value, mask)
                start = time.perf_counter()
                for _ in range(repeats):
                    attention.halleval_attention(module, query, key, value, mask)
                best[path] = min(best[path], (time.perf_counter() - start) / repeats)
        print(f"  B {batch} heads {heads}/{kv_heads} dim {dim} keys {keys:4d}: fast {best['fast'] * 1e6:8.1f} us, "
              f"generic {best['generic'] * 1e6:8.1f} us, ratio {best['fast'] / best['generic']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--widths", default="tiny,7b", help="tiny, 7b or both (comma-separated); 7b needs ~6 GB")
    parser.add_argument("--no-baselines", dest="baselines", action="store_false", help="skip beam/VCD/OPERA/DoLa")
    parser.add_argument("--only-baselines", action="store_true", help="time only beam/VCD/OPERA/DoLa")
    args = parser.parse_args()
    torch.set_num_threads(1)  # steadier timings on a shared machine
    print(f"load average before: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")
    for batch in (1, 8):
        if args.baselines:
            loaded, inputs, _, _ = setup(batch)
            print(f"batch {batch}: baselines, step time relative to a greedy step ({BASELINE_TOKENS} tokens)")
            baseline_ratios(loaded, inputs, max(1, args.repeats // 2))
        if args.only_baselines:
            continue
        for width in args.widths.split(","):
            paper_methods(width, batch, args.repeats, naive=width == "tiny")
    if not args.only_baselines:
        attention_paths()
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
