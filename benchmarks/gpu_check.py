"""GPU check: method equivalence and method speed at a realistic width, on CUDA, in bf16 and float32.

On the first CUDA machine available run

    python benchmarks/gpu_check.py                      # cuda, bfloat16 and float32
    python benchmarks/gpu_check.py --dtypes bfloat16 --batches 1 8 --tokens 32

It builds a random LLaVA whose language model has LLaMA-7B-shaped layers (hidden 4096, 32 heads of
128, MLP 11008; 16 layers by default, so the paper's saliency layers 6-8 and LocoRE layers 9-14
exist) and, per dtype, prints:

1. equivalence: greedy through the halleval decode loop against `model.generate` (token
   agreement), and the halleval attention with a LocoRE gain (SDPA plus the log-sum-exp
   correction) against a float64 eager reference on 7B-shaped decode queries (max abs error);
2. speed: seconds per generated token of greedy, locore, sgrs and sgrs+locore through the
   registered methods (prepare + generate, as an inference actor runs them), and each one's
   ratio to greedy, at each batch size.

`--dry-run` runs the same code on the CPU at width 64 with few tokens (tests/test_gpu_check.py
runs it so the script is known to work); its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image  # noqa: E402
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration  # noqa: E402

from pipeline import attention  # noqa: E402
from pipeline.api import LoadedModel, Visual  # noqa: E402
from pipeline.attention import AttentionPlan, Locore, halleval_attention  # noqa: E402
from pipeline.config import MethodConfig  # noqa: E402
from pipeline.methods import METHODS  # noqa: E402
from pipeline.models import MODELS  # noqa: E402
from pipeline.models.llava import tiny_llava  # noqa: E402
from pipeline.models.tiny import seeded_init  # noqa: E402
from pipeline.model_inputs import build_inputs  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
LLAMA_7B = {"hidden_size": 4096, "intermediate_size": 11008, "num_attention_heads": 32, "num_key_value_heads": 32}
DRY_RUN = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 4}
METHOD_NAMES = ("greedy", "locore", "sgrs", "sgrs+locore")
PROMPT = "Please describe this image in detail."


def build(width: dict[str, int], layers: int, dtype: torch.dtype, device: str) -> LoadedModel:
    """A random LLaVA-1.5 with the tiny model's processor and tokenizer and a `width` language model."""
    _, processor = tiny_llava()
    tokenizer = processor.tokenizer
    text = LlamaConfig(
        **width, num_hidden_layers=layers, vocab_size=len(tokenizer), max_position_embeddings=4096,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    vision = CLIPVisionConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, image_size=56,
        patch_size=14, projection_dim=64,
    )
    config = LlavaConfig(
        vision_config=vision, text_config=text, image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-2, vision_feature_select_strategy="default",
    )
    with torch.device(device):
        model = seeded_init(lambda: LlavaForConditionalGeneration(config))
    processor.tokenizer.padding_side = "left"
    model = model.to(dtype=dtype).eval()
    return LoadedModel(model=model, processor=processor, tokenizer=tokenizer, adapter=MODELS.get("llava15")(), device=device)


def batch_inputs(loaded: LoadedModel, batch: int) -> dict[str, torch.Tensor]:
    image = Visual(images=[Image.new("RGB", (56, 56), (120, 80, 40))], modality="image")
    return build_inputs(loaded, [PROMPT] * batch, [image] * batch)


def greedy_agreement(loaded: LoadedModel, tokens: int) -> float:
    """Share of positions where the halleval greedy loop and `generate` pick the same token."""
    inputs = batch_inputs(loaded, 2)
    method = METHODS.get("greedy")()
    method.prepare(loaded, MethodConfig(name="greedy"))
    ours = method.generate(loaded, inputs, MethodConfig(name="greedy"), tokens, _generators(loaded, 2))
    with torch.no_grad():
        reference = loaded.model.generate(**inputs, do_sample=False, max_new_tokens=tokens)
    same = total = 0
    for row, generation in enumerate(ours):
        expected = reference[row, inputs["input_ids"].shape[1]:].tolist()[: len(generation.token_ids)]
        same += sum(a == b for a, b in zip(generation.token_ids, expected))
        total += len(expected)
    return same / max(total, 1)


class _Head(torch.nn.Module):
    """What the attention function reads from a decoder layer's attention module."""

    def __init__(self, layer_idx: int, head_dim: int) -> None:
        super().__init__()
        self.layer_idx, self.head_dim, self.num_key_value_groups = layer_idx, head_dim, 1


def locore_attention_error(heads: int, head_dim: int, dtype: torch.dtype, device: str, keys: int = 640) -> float:
    """Max |halleval LocoRE attention - float64 eager reference| on one decode query per row."""
    generator = torch.Generator(device="cpu").manual_seed(0)
    batch, output_start = 8, keys - 40
    query, key, value = (
        torch.randn(batch, heads, length, head_dim, generator=generator).to(device)
        for length in (1, keys, keys)
    )
    mask = torch.ones(batch, 1, 1, keys, dtype=torch.bool, device=device)
    mask[1, ..., :100] = False  # a left-padded row
    locore = Locore(layers=(0, 0), beta=0.15, window=8)
    with attention.active(AttentionPlan(output_start=output_start, locore=locore)):
        fused, _ = halleval_attention(_Head(0, head_dim), query.to(dtype), key.to(dtype), value.to(dtype), mask)
    q, k, v = (t.to(dtype).double() for t in (query, key, value))
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(head_dim)
    probs = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    columns = torch.arange(keys, device=device)
    distance = (keys - 1) - columns  # the query is the newest position, at cache column keys - 1
    window = (columns >= output_start) & (distance >= 1) & (distance <= locore.window)
    eager = (probs * (1 + locore.beta * window.double())) @ v
    return float((fused.double() - eager.transpose(1, 2)).abs().max())


def _generators(loaded: LoadedModel, batch: int) -> list[torch.Generator]:
    return [torch.Generator(device=loaded.device).manual_seed(row) for row in range(batch)]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def seconds_per_token(loaded: LoadedModel, name: str, batch: int, tokens: int, repeats: int) -> float:
    """Best of `repeats` decodes: wall seconds / tokens generated per row (prefill included)."""
    params = MethodConfig(name=name)
    method = METHODS.get(name)()
    method.prepare(loaded, params)
    inputs = batch_inputs(loaded, batch)
    best = float("inf")
    for _ in range(repeats):
        _sync(loaded.device)
        start = time.perf_counter()
        generations = method.generate(loaded, inputs, params, tokens, _generators(loaded, batch))
        _sync(loaded.device)
        generated = sum(len(g.token_ids) for g in generations) / batch
        best = min(best, (time.perf_counter() - start) / max(generated, 1))
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--dtypes", nargs="+", default=["bfloat16", "float32"], choices=sorted(DTYPES))
    parser.add_argument("--layers", type=int, default=16, help="decoder layers of 7B width (>= 15)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--tokens", type=int, default=32, help="new tokens per decode")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dry-run", action="store_true", help="CPU, width 64, float32, 3 tokens: checks the script runs")
    args = parser.parse_args(argv)
    width = LLAMA_7B
    if args.dry_run:
        width, args.device, args.dtypes, args.batches, args.tokens, args.repeats = DRY_RUN, "cpu", ["float32"], [2], 3, 1
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA device visible — run on a GPU machine, or pass --dry-run", file=sys.stderr)
        return 2
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    head_dim = width["hidden_size"] // width["num_attention_heads"]
    print(f"gpu_check on {device_name}: hidden {width['hidden_size']}, {args.layers} layers, torch {torch.__version__}")
    for dtype_name in args.dtypes:
        dtype = DTYPES[dtype_name]
        loaded = build(width, args.layers, dtype, args.device)
        error = locore_attention_error(width["num_attention_heads"], head_dim, dtype, args.device)
        agreement = greedy_agreement(loaded, args.tokens)
        print(f"\n[{dtype_name}] equivalence: greedy loop vs generate {agreement:.1%} tokens equal; "
              f"LocoRE attention vs float64 eager max abs error {error:.2e}")
        for batch in args.batches:
            times = {name: seconds_per_token(loaded, name, batch, args.tokens, args.repeats) for name in METHOD_NAMES}
            cells = "  ".join(f"{name} {times[name] * 1e3:.2f} ms ({times[name] / times['greedy']:.2f}x)" for name in METHOD_NAMES)
            print(f"[{dtype_name}] batch {batch}: per token {cells}")
        del loaded
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
