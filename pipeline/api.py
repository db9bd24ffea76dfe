"""The interfaces between the parts of the pipeline; implementations import these, not each other.

- `Sample`: one benchmark item, as a reader yields it (paths only; pixels are decoded in the
  pipeline's CPU stage, so a dataset streams).
- `Benchmark`: a registered reader of a benchmark's released on-disk format.
- `ModelAdapter`: a registered LVLM family: loading, chat template and processing, visual token
  spans, defaults.
- `DecodingMethod`: a registered way to pick tokens (greedy, sample, sgrs, ...).
- `Generation`: what a method returns per sample; it becomes one Parquet row.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:  # torch is heavy; readers and the driver never need it
    import torch
    from PIL import Image
    from transformers import BatchFeature

    from pipeline.config import BenchmarkConfig, MethodConfig, ModelArgs

Modality = Literal["image", "video", "text"]


@dataclass
class Sample:
    """One benchmark item. `metadata` carries what the benchmark's scorer needs (image_id,
    question_id, label, task, ...) and must be JSON-serialisable."""

    sample_id: str
    benchmark: str
    prompt: str
    image_path: str | None = None
    video_path: str | None = None
    reference: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # set by a reader for an item it could not parse; never dropped

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["metadata"] = json.dumps(self.metadata, sort_keys=True)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Sample:
        values = {name: row.get(name) for name in cls.__dataclass_fields__}
        values["metadata"] = json.loads(row.get("metadata") or "{}")
        return cls(**values)


class Benchmark(Protocol):
    """A registered benchmark reader (one module per benchmark, see pipeline/benchmarks/)."""

    name: str
    version: str  # bumped when the prompt or the split changes
    modality: Modality
    metrics: tuple[str, ...]  # names in eval's METRICS registry that score this benchmark

    def samples(self, config: BenchmarkConfig, seed: int) -> Iterator[Sample]:
        """Yields every sample, in a stable order; raises BenchmarkError for a missing file."""
        ...


class BenchmarkError(ValueError):
    """A benchmark folder that cannot be read; the message names the missing or bad file."""


@dataclass
class Visual:
    """Decoded pixels for one sample: one image, or the sampled frames of a video."""

    images: list[Image.Image]
    modality: Modality


@dataclass
class LoadedModel:
    """A model ready for decoding, as an adapter builds it inside an inference actor."""

    model: Any  # transformers PreTrainedModel
    processor: Any
    tokenizer: Any
    adapter: ModelAdapter
    device: str = "cpu"
    # The run's `model.conversation` (for adapters that offer several prompt templates), which
    # `pipeline.model_inputs.build_inputs` passes to `process`.
    conversation: str | None = None

    @property
    def eos_token_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        return set(eos) if isinstance(eos, (list, tuple)) else {int(eos)}


class ModelAdapter(Protocol):
    """A registered LVLM family. Adding a model is one file in pipeline/models/ plus a test."""

    name: str
    modality: Modality
    default_target_layers: tuple[int, ...]  # saliency layers
    default_locore_layers: tuple[int, int]  # [l0, l1], inclusive
    default_locore_beta: float
    # model.args that this family's processor takes (e.g. Qwen's min_pixels); optional, none if absent.
    processor_args: tuple[str, ...]

    def load(self, checkpoint: str, dtype: torch.dtype, device: str, args: ModelArgs | None = None) -> LoadedModel:
        """Loads a local folder or hub id with `model.args` passed to the model's and the processor's
        from_pretrained; checkpoint 'tiny' builds a small random model offline."""
        ...

    def process(
        self, processor: Any, prompts: Sequence[str], visuals: Sequence[Visual], conversation: str | None = None
    ) -> BatchFeature:
        """Applies the chat template (the run's `model.conversation`, where the family offers
        several) and the processor to a batch, left-padded, on CPU. The pipeline calls it per
        sample in a CPU stage and batches with `pipeline.model_inputs.collate`, which must give
        what this returns for the whole batch (tests/test_models.py checks every family)."""
        ...

    def visual_token_ids(self, loaded: LoadedModel) -> set[int]:
        """Token ids of image/video placeholder tokens, from which visual spans are found."""
        ...


@dataclass
class Generation:
    """One sample's decoded output and per-token records (lists have one entry per token)."""

    token_ids: list[int]
    logprobs: list[float]
    saliency: list[float | None] | None = None  # None where the key span was empty
    tau: list[float] | None = None
    rejections: list[int] | None = None
    fallback: list[bool] | None = None
    candidate_ids: list[list[int]] | None = None
    candidate_saliency: list[list[float]] | None = None
    method_fields: dict[str, list] | None = None  # method-specific per-token records, by name


class DecodingMethod(Protocol):
    """A registered decoding method; `params` is the run's validated MethodConfig."""

    def prepare(self, loaded: LoadedModel, params: MethodConfig) -> None:
        """Called once after the model loads (e.g. to install an attention implementation)."""
        ...

    def generate(
        self,
        loaded: LoadedModel,
        inputs: dict[str, torch.Tensor],
        params: MethodConfig,
        max_new_tokens: int,
        generators: list[torch.Generator],
    ) -> list[Generation]:
        """Decodes a left-padded batch; generators[i] is sample i's own seeded generator."""
        ...
