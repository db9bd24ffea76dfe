"""GPU check: method equivalence and method speed at a realistic width, on CUDA, in bf16 and float32.

On the first CUDA machine available run

    python benchmarks/gpu_check.py                      # cuda, bfloat16 and float32
    python benchmarks/gpu_check.py --dtypes bfloat16 --batches 1 8 --tokens 32

It builds a random LLaVA whose language model has LLaMA-7B-shaped layers (hidden 4096, 32 heads of
128, MLP 11008, vocabulary 32,000; 16 layers by default, so the paper's saliency layers 6-8 and
LocoRE layers 9-14 exist) and a 336-pixel image (576 image tokens, LLaVA-1.5's context), and per
dtype prints:

1. equivalence:
   - greedy through the halleval decode loop against `model.generate` (token agreement; where a
     row leaves `generate`'s path, the step and how close `generate`'s own choice was there);
   - the halleval attention with a LocoRE gain, on the fast path (the fused kernel's LSE) and
     the generic one, against a float64 eager reference on decode queries of a 7B layer and of
     a GQA layer with an unaligned number of keys (max abs error);
   - SGRS's candidate saliency (one batched backward) against the naive full recompute with
     eager attention (max relative error, LocoRE on and off);
2. speed: seconds per decode step (prefill excluded) of greedy, locore (fast path), locore on
   the generic path, sgrs and sgrs+locore through the registered methods (prepare + generate,
   as an inference actor runs them), each one's ratio to greedy and its peak GPU memory above
   the weights, at each batch size.

Each check runs on its own: one that fails prints its error and the others still run (the exit
status is then 1), so one short GPU lease gives every figure it can.

`--dry-run` runs the same code on the CPU at width 64 with few tokens (tests/test_gpu_check.py
runs it so the script is known to work); its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the literal references

from PIL import Image  # noqa: E402
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration  # noqa: E402

from method_reference import eager_locore_attention, naive_saliency, use_reference_locore  # noqa: E402
from pipeline import attention  # noqa: E402
from pipeline.api import LoadedModel, Visual  # noqa: E402
from pipeline.attention import AttentionPlan, Locore, halleval_attention  # noqa: E402
from pipeline.config import MethodConfig  # noqa: E402
from pipeline.decoding import DecodeState, StepChoice, decode  # noqa: E402
from pipeline.methods import METHODS  # noqa: E402
from pipeline.models import MODELS  # noqa: E402
from pipeline.models.llava import tiny_llava  # noqa: E402
from pipeline.models.tiny import seeded_init  # noqa: E402
from pipeline.model_inputs import build_inputs  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
LLAMA_7B = {"hidden_size": 4096, "intermediate_size": 11008, "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32000}
DRY_RUN = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 0}
# (name, method, timed on LocoRE's generic path)
TIMED = (("greedy", "greedy", False), ("locore", "locore", False), ("locore[generic]", "locore", True),
         ("sgrs", "sgrs", False), ("sgrs+locore", "sgrs+locore", False))
ATTENTION_SHAPES = ((32, 32, 640), (32, 8, 653))  # (heads, KV heads, keys): a 7B layer; GQA, unaligned keys
PROMPT = "Please describe this image in detail."


def build(width: dict[str, int], layers: int, image_size: int, dtype: torch.dtype, device: str) -> LoadedModel:
    """A random LLaVA-1.5 with the tiny model's tokenizer, a `width` language model and an
    `image_size` CLIP input (the tower itself stays tiny: the language model is what is timed).
    Ids past the tokenizer's (vocab_size 32,000) only widen the embedding and the head, as a
    real vocabulary does; nothing here turns them into text."""
    _, processor = tiny_llava()
    tokenizer = processor.tokenizer
    text = LlamaConfig(
        **{**width, "vocab_size": max(width["vocab_size"], len(tokenizer))}, num_hidden_layers=layers,
        max_position_embeddings=4096, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    vision = CLIPVisionConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, image_size=image_size,
        patch_size=14, projection_dim=64,
    )
    config = LlavaConfig(
        vision_config=vision, text_config=text, image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-2, vision_feature_select_strategy="default",
    )
    with torch.device(device):
        model = seeded_init(lambda: LlavaForConditionalGeneration(config))
    processor.image_processor.size = {"shortest_edge": image_size}
    processor.image_processor.crop_size = {"height": image_size, "width": image_size}
    processor.tokenizer.padding_side = "left"
    model = model.to(dtype=dtype).eval().requires_grad_(False)
    return LoadedModel(model=model, processor=processor, tokenizer=tokenizer, adapter=MODELS.get("llava15")(), device=device)


def batch_inputs(loaded: LoadedModel, batch: int) -> dict[str, torch.Tensor]:
    image = Visual(images=[Image.new("RGB", (64, 64), (120, 80, 40))], modality="image")
    prompts = [PROMPT if row % 2 == 0 else "What is in the image?" for row in range(batch)]  # left padding
    return build_inputs(loaded, prompts, [image] * batch)


def _generators(loaded: LoadedModel, batch: int) -> list[torch.Generator]:
    return [torch.Generator(device=loaded.device).manual_seed(row) for row in range(batch)]


def greedy_agreement(loaded: LoadedModel, tokens: int) -> tuple[float, list[str]]:
    """Share of positions where the halleval greedy loop and `generate` pick the same token, and
    per row that leaves `generate`'s path, where and how close `generate`'s choice was there
    (`first_divergence`): a random model in half precision has near ties, which either side may
    break, so a divergence at a gap of an ulp or two says the loops agree to the dtype."""
    inputs = batch_inputs(loaded, 2)
    method = METHODS.get("greedy")()
    method.prepare(loaded, MethodConfig(name="greedy"))
    ours = method.generate(loaded, inputs, MethodConfig(name="greedy"), tokens, _generators(loaded, 2))
    with torch.no_grad():
        reference = loaded.model.generate(**inputs, do_sample=False, max_new_tokens=tokens, min_new_tokens=tokens,
                                          output_logits=True, return_dict_in_generate=True)
    same = total = 0
    divergences = []
    for row, generation in enumerate(ours):
        expected = reference.sequences[row, inputs["input_ids"].shape[1]:].tolist()[: len(generation.token_ids)]
        same += sum(a == b for a, b in zip(generation.token_ids, expected))
        total += len(expected)
        divergence = first_divergence(generation.token_ids, expected, [step[row] for step in reference.logits])
        if divergence is not None:
            divergences.append(f"row {row} {divergence}")
    return same / max(total, 1), divergences


def first_divergence(ours: list[int], expected: list[int], logits: list[torch.Tensor]) -> str | None:
    """Where `ours` first leaves `expected` (the reference's tokens, whose step t had raw
    next-token logits logits[t]): the step, the reference's top-2 logit gap there and the rank
    of our token among its logits; None where they agree."""
    step = next((t for t, (a, b) in enumerate(zip(ours, expected)) if a != b), None)
    if step is None:
        return None
    step_logits = logits[step].float()
    top = step_logits.topk(2).values
    rank = int((step_logits > step_logits[ours[step]]).sum()) + 1
    return f"at token {step}: generate's top-2 logit gap {float(top[0] - top[1]):.3g} (logit {float(top[0]):.3g}), ours its #{rank}"


class _Head(torch.nn.Module):
    """What the attention function reads from a decoder layer's attention module."""

    def __init__(self, layer_idx: int, head_dim: int, groups: int) -> None:
        super().__init__()
        self.layer_idx, self.head_dim, self.num_key_value_groups = layer_idx, head_dim, groups


def locore_attention_error(heads: int, kv_heads: int, keys: int, head_dim: int, dtype: torch.dtype, device: str,
                           generic: bool) -> float:
    """Max |halleval LocoRE attention - float64 eager reference| on one decode query per row,
    with a left-padded row; `generic`: forced onto the generic path."""
    generator = torch.Generator(device="cpu").manual_seed(0)
    batch, output_start = 8, keys - 40
    query = torch.randn(batch, heads, 1, head_dim, generator=generator).to(device)
    key, value = (torch.randn(batch, kv_heads, keys, head_dim, generator=generator).to(device) for _ in range(2))
    mask = torch.ones(batch, 1, 1, keys, dtype=torch.bool, device=device)
    mask[1, ..., :100] = False  # a left-padded row
    locore = Locore(layers=(0, 0), beta=0.15, window=8)
    module = _Head(0, head_dim, heads // kv_heads)
    with attention.active(AttentionPlan(output_start=output_start, locore=locore)), attention.generic_locore(generic):
        fused, _ = halleval_attention(module, query.to(dtype), key.to(dtype), value.to(dtype), mask)
    additive = torch.zeros(mask.shape, dtype=torch.float64, device=device).masked_fill(~mask, float("-inf"))
    use_reference_locore(locore, output_start)
    try:
        eager, _ = eager_locore_attention(module, *(t.to(dtype).double() for t in (query, key, value)), additive)
    finally:
        use_reference_locore(None, 0)
    return float((fused.double() - eager).abs().max())


def saliency_error(loaded: LoadedModel, locore: Locore | None, steps: int = 3, candidates: int = 2) -> float:
    """Max relative |efficient S(c) - naive recompute| over the top candidates of the last of
    `steps` greedy steps, span post_image (the SGRS path, one batched backward per step)."""
    inputs = batch_inputs(loaded, 2)
    layers = loaded.adapter.default_target_layers
    records = []

    def select(state: DecodeState) -> StepChoice:
        top = state.logits.topk(candidates, dim=-1).indices
        records.append((state.input_ids.clone(), top, state.saliency(top, "post_image")))
        return StepChoice(token_ids=top[:, 0])

    attention.install(loaded.model)
    decode(loaded, inputs, steps, _generators(loaded, 2), select, locore=locore, saliency_layers=layers)
    prefix, top, efficient = records[-1]
    worst = 0.0
    for k in range(candidates):
        naive = naive_saliency(loaded, inputs, prefix, top[:, k], layers, "post_image", locore=locore)
        worst = max(worst, float(((efficient[:, k] - naive.detach()).abs() / naive.detach().abs().clamp_min(1e-30)).max()))
    return worst


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed_decode(loaded: LoadedModel, method_name: str, generic: bool, batch: int, tokens: int, repeats: int
                 ) -> tuple[float, float | None]:
    """(seconds per decode step, peak GPU memory above what was allocated before, in GiB, or
    None off CUDA). A step's time is (T(tokens) - T(1)) / (tokens - 1) over whole decodes,
    best of `repeats` each, so the prefill of a 600-token prompt never enters it."""
    params = MethodConfig(name=method_name)
    method = METHODS.get(method_name)()
    method.prepare(loaded, params)
    inputs = batch_inputs(loaded, batch)
    cuda = loaded.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated() if cuda else 0

    def best(limit: int) -> tuple[float, float]:
        fastest, generated = float("inf"), 0.0
        for _ in range(repeats):
            _sync(loaded.device)
            start = time.perf_counter()
            generations = method.generate(loaded, inputs, params, limit, _generators(loaded, batch))
            _sync(loaded.device)
            fastest = min(fastest, time.perf_counter() - start)
            generated = sum(len(g.token_ids) for g in generations) / batch
        return fastest, generated

    with attention.generic_locore(generic):
        one, one_generated = best(1)
        full, full_generated = best(tokens)
    peak = (torch.cuda.max_memory_allocated() - before) / 2**30 if cuda else None
    return (full - one) / max(full_generated - one_generated, 1), peak


def fast_path_calls(loaded: LoadedModel, tokens: int) -> int:
    """How many LocoRE attention calls of one batch-2 decode took the fused-kernel fast path."""
    calls = []
    real = attention._fast_locore
    attention._fast_locore = lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs)
    try:
        params = MethodConfig(name="locore")
        method = METHODS.get("locore")()
        method.prepare(loaded, params)
        method.generate(loaded, batch_inputs(loaded, 2), params, tokens, _generators(loaded, 2))
    finally:
        attention._fast_locore = real
    return len(calls)


def check(label: str, failures: list[str], run) -> None:
    """Runs one check; a failure is printed and counted, and the next check still runs."""
    try:
        run()
    except Exception:  # noqa: BLE001 - one GPU lease should give every figure it can
        failures.append(label)
        print(f"{label}: FAILED\n{traceback.format_exc()}", flush=True)


def run_dtype(args, width: dict[str, int], dtype_name: str, failures: list[str]) -> None:
    dtype = DTYPES[dtype_name]
    head_dim = width["hidden_size"] // width["num_attention_heads"]
    loaded = build(width, args.layers, args.image_size, dtype, args.device)
    prompt_tokens = batch_inputs(loaded, 1)["input_ids"].shape[1]
    weights = sum(p.numel() * p.element_size() for p in loaded.model.parameters()) / 2**30
    print(f"\n[{dtype_name}] model: {weights:.1f} GiB of weights, prompt {prompt_tokens} tokens", flush=True)

    def equivalence() -> None:
        agreement, divergences = greedy_agreement(loaded, args.tokens)
        where = "".join(f"; {divergence}" for divergence in divergences)
        print(f"[{dtype_name}] greedy loop vs generate: {agreement:.1%} tokens equal{where}", flush=True)

    def locore_attention() -> None:
        cells = []
        for heads, kv_heads, keys in ATTENTION_SHAPES:
            heads, kv_heads = (heads, kv_heads) if not args.dry_run else (4, 2 if kv_heads != heads else 4)
            errors = [locore_attention_error(heads, kv_heads, keys, head_dim, dtype, args.device, generic) for generic in (False, True)]
            cells.append(f"heads {heads}/{kv_heads} keys {keys}: fast {errors[0]:.2e}, generic {errors[1]:.2e}")
        print(f"[{dtype_name}] LocoRE attention vs float64 eager, max abs error: " + "; ".join(cells), flush=True)

    def fast_path() -> None:
        print(f"[{dtype_name}] LocoRE fast path taken in {fast_path_calls(loaded, args.tokens)} attention calls "
              f"of one {args.tokens}-token decode", flush=True)

    def saliency() -> None:
        locore = Locore(loaded.adapter.default_locore_layers, beta=0.15, window=8)
        errors = [saliency_error(loaded, gain) for gain in (None, locore)]
        print(f"[{dtype_name}] SGRS saliency vs naive recompute, max relative error: {errors[0]:.2e} "
              f"(with LocoRE {errors[1]:.2e})", flush=True)

    def speed(batch: int) -> None:
        results = {label: timed_decode(loaded, name, generic, batch, args.tokens, args.repeats) for label, name, generic in TIMED}
        greedy = results["greedy"][0]
        cells = []
        for label, (seconds, peak) in results.items():
            memory = f", peak +{peak:.2f} GiB" if peak is not None else ""
            cells.append(f"{label} {seconds * 1e3:.2f} ms ({seconds / greedy:.2f}x{memory})")
        print(f"[{dtype_name}] batch {batch}: per decode step " + "  ".join(cells), flush=True)

    check(f"[{dtype_name}] greedy equivalence", failures, equivalence)
    check(f"[{dtype_name}] LocoRE attention", failures, locore_attention)
    check(f"[{dtype_name}] LocoRE fast path", failures, fast_path)
    check(f"[{dtype_name}] saliency", failures, saliency)
    for batch in args.batches:
        check(f"[{dtype_name}] speed batch {batch}", failures, lambda: speed(batch))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--dtypes", nargs="+", default=["bfloat16", "float32"], choices=sorted(DTYPES))
    parser.add_argument("--layers", type=int, default=16, help="decoder layers of 7B width (>= 15)")
    parser.add_argument("--image-size", type=int, default=336, help="image side in pixels: (side / 14)^2 image tokens")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--tokens", type=int, default=32, help="new tokens per decode")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dry-run", action="store_true", help="CPU, width 64, float32, 4 tokens: checks the script runs")
    args = parser.parse_args(argv)
    width = LLAMA_7B
    if args.dry_run:
        width, args.device, args.dtypes, args.batches, args.tokens, args.repeats, args.image_size = DRY_RUN, "cpu", ["float32"], [2], 4, 1, 56
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA device visible — run on a GPU machine, or pass --dry-run", file=sys.stderr)
        return 2
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    import transformers

    print(f"gpu_check on {device_name}: hidden {width['hidden_size']}, {args.layers} layers, torch {torch.__version__}, "
          f"transformers {transformers.__version__}", flush=True)
    failures: list[str] = []
    for dtype_name in args.dtypes:
        check(f"[{dtype_name}] model", failures, lambda: run_dtype(args, width, dtype_name, failures))
        if args.device.startswith("cuda"):  # the model went with run_dtype's frame
            torch.cuda.empty_cache()
    if failures:
        print(f"\ngpu_check: {len(failures)} check(s) failed: {', '.join(failures)}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
