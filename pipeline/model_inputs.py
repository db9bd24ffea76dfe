"""Model inputs, built one sample at a time and batched where the model runs.

A model adapter's `process` runs the checkpoint's processor (chat template, tokenizer, image
processor) on CPU. The pipeline calls it per sample in its CPU map stage, so the inference actor
only batches and runs the model: `collate` left-pads the token sequences and stacks the pixel
tensors exactly as the processor does for a whole batch (tests/test_models.py checks that for
every registered family), `to_model` moves the batch to the model's device and dtype.
`to_bytes`/`from_bytes` carry one sample's tensors through Arrow as safetensors bytes (exact
dtypes, no pickle).

`build_inputs` is the same path in one process, for callers that hold a loaded model (the
actor's in-process use, benchmarks, tests).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from pipeline.api import LoadedModel, Visual

# The per-token sequences a processor returns, [1, length] per sample; padded on the left (the
# decode loop appends on the right) with the pad token for ids and 0 for the masks and type ids.
SEQUENCE_KEYS = ("input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids")


def sample_inputs(processor: Any, adapter: Any, prompt: str, visual: Visual, conversation: str | None) -> dict[str, torch.Tensor]:
    """One sample's unpadded model inputs (batch dimension 1), on CPU."""
    batch = adapter.process(processor, [prompt], [visual], conversation)
    return {key: value for key, value in batch.items() if isinstance(value, torch.Tensor)}


def collate(items: Sequence[Mapping[str, torch.Tensor]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Batches per-sample inputs as the processor would have for the whole batch.

    Sequences are left-padded to the longest. Every other tensor (pixel values, image sizes,
    grids) is concatenated along its first dimension; where samples differ in a later dimension
    (LLaVA-OneVision's number of anyres patches) each is zero-padded at the end to the largest,
    as those image processors pad a batch.
    """
    keys = list(items[0])
    if any(set(item) != set(keys) for item in items):
        raise ValueError(f"samples of one batch have different model inputs: {sorted({tuple(i) for i in items})}")
    batch = {}
    for key in keys:
        values = [item[key] for item in items]
        if key in SEQUENCE_KEYS:
            length = max(value.shape[-1] for value in values)
            fill = pad_token_id if key == "input_ids" else 0
            batch[key] = torch.cat([F.pad(value, (length - value.shape[-1], 0), value=fill) for value in values])
        else:
            batch[key] = torch.cat(_zero_padded(values))
    return batch


def _zero_padded(values: list[torch.Tensor]) -> list[torch.Tensor]:
    shape = [max(sizes) for sizes in zip(*(value.shape for value in values))]
    padded = []
    for value in values:
        # F.pad takes (last-dim before, after, second-to-last before, after, ...).
        widths = [w for size, target in zip(reversed(value.shape[1:]), reversed(shape[1:])) for w in (0, target - size)]
        padded.append(F.pad(value, widths) if any(widths) else value)
    return padded


def to_model(batch: Mapping[str, torch.Tensor], loaded: LoadedModel) -> dict[str, torch.Tensor]:
    """Moves a batch to the model's device; pixel tensors take the model's dtype."""
    out = {}
    for key, value in batch.items():
        if key.startswith("pixel_values"):
            value = value.to(loaded.model.dtype)
        out[key] = value.to(loaded.device)
    return out


def build_inputs(loaded: LoadedModel, prompts: Sequence[str], visuals: Sequence[Visual]) -> dict[str, torch.Tensor]:
    """A left-padded batch on the model's device, built sample by sample as the pipeline does,
    with the run's conversation (`loaded.conversation`)."""
    items = [sample_inputs(loaded.processor, loaded.adapter, prompt, visual, loaded.conversation)
             for prompt, visual in zip(prompts, visuals, strict=True)]
    return to_model(collate(items, loaded.tokenizer.pad_token_id), loaded)


def to_bytes(inputs: Mapping[str, torch.Tensor]) -> bytes:
    return save_tensors({key: value.contiguous() for key, value in inputs.items()})


def from_bytes(data: bytes) -> dict[str, torch.Tensor]:
    return load_tensors(data)
