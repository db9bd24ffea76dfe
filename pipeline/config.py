"""The one config object of a run, validated at load and hashed into the run id.

A run is (model, decoding method, benchmark, generation limits, seed). Resources, batch size and
the output folder do not change what is generated, so they stay out of the run id: the same run
on 1 or 8 actors writes to the same place and resumes there.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the key and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Strict):
    name: str = Field("llava15", description="Registered model adapter, e.g. llava15, qwen2_vl.")
    checkpoint: str = Field(
        "tiny",
        description="Local checkpoint folder or hub id; 'tiny' builds a small random model offline "
        "(demo and tests).",
    )
    dtype: Literal["float32", "float16", "bfloat16"] = Field(
        "float32", description="Weights dtype; use bfloat16 or float16 on GPUs."
    )
    conversation: str | None = Field(
        None,
        description="Prompt template, for adapters that offer several (llava15: vicuna_v1, the "
        "template of LLaVA-1.5's eval scripts and its published numbers; llava_v1; "
        "hf_chat_template, the checkpoint's own). None takes the adapter's default, which is "
        "then recorded (it enters the run id).",
    )

    @field_validator("name")
    @classmethod
    def _known_model(cls, name: str) -> str:
        from pipeline.models import MODELS

        return MODELS.validate(name)

    @model_validator(mode="before")
    @classmethod
    def _resolve_conversation(cls, data: Any) -> Any:
        """Fills in the adapter's default conversation and rejects one it does not offer."""
        if not isinstance(data, dict):
            return data
        from pipeline.models import MODELS

        name = data.get("name", "llava15")
        if name not in MODELS:
            return data  # the name validator reports it
        adapter = MODELS.get(name)
        offered = tuple(getattr(adapter, "conversations", ()))
        chosen = data.get("conversation")
        if chosen is None:
            return {**data, "conversation": getattr(adapter, "default_conversation", None)}
        if chosen not in offered:
            choices = ", ".join(offered) if offered else "none (leave it unset)"
            raise ValueError(f"model {name!r} has no conversation {chosen!r}; choose from: {choices}")
        return data


class MethodConfig(_Strict):
    """Decoding method and all its parameters (flat, so grids can sweep `method.alpha`)."""

    name: str = Field("greedy", description="greedy, sample, sgrs, locore or sgrs+locore.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature (sample, sgrs).")
    top_k: int = Field(5, ge=1, description="SGRS: K candidates per step (top-K of the softmax).")
    max_rejections: int = Field(3, ge=1, description="SGRS: R draws before the fallback.")
    alpha: float = Field(0.6, ge=0, description="SGRS: threshold factor, tau = alpha * mean(history).")
    history_window: int = Field(5, ge=1, description="SGRS: W, accepted saliencies averaged for tau.")
    saliency_scale: float = Field(
        1.0, gt=0, description="SGRS: r, multiplies S(c) before the test (paper Table 6)."
    )
    key_span: Literal["post_image", "outputs"] = Field(
        "post_image",
        description="Saliency keys: text after the image (official code) or generated tokens only.",
    )
    target_layers: tuple[int, ...] | None = Field(
        None, description="Saliency layers; None takes the model adapter's default."
    )
    beta: float | None = Field(
        None, ge=0, description="LocoRE gain, gamma = 1 + beta; None takes the adapter's default."
    )
    locore_window: int = Field(8, ge=1, description="LocoRE: w_s, outputs at distance <= w_s gain.")
    locore_layers: tuple[int, int] | None = Field(
        None, description="LocoRE: first and last layer [l0, l1]; None takes the adapter's default."
    )
    renormalize: bool = Field(False, description="LocoRE: renormalise the attention row after gain.")
    record_saliency: bool = Field(
        False, description="Record per-token saliency for greedy/sample/locore runs too (costs time)."
    )
    record_candidates: bool = Field(
        False, description="SGRS: store the K candidates and their saliencies per token (large)."
    )

    @field_validator("name")
    @classmethod
    def _known_method(cls, name: str) -> str:
        from pipeline.methods import METHODS

        return METHODS.validate(name)


class BenchmarkConfig(_Strict):
    name: str = Field("chair", description="Registered benchmark reader, e.g. chair, pope, mme.")
    root: str = Field(..., description="Folder holding the benchmark in its released format.")
    subset: str | None = Field(
        None, description="Benchmark-specific split, e.g. POPE 'random'/'popular'/'adversarial'."
    )
    limit: int | None = Field(None, ge=1, description="Seeded subset of this many samples.")
    num_frames: int = Field(8, ge=1, description="Video benchmarks: frames sampled uniformly.")
    prompt: str | None = Field(None, description="Override the benchmark's standard prompt.")

    @field_validator("name")
    @classmethod
    def _known_benchmark(cls, name: str) -> str:
        from pipeline.benchmarks import BENCHMARKS

        return BENCHMARKS.validate(name)


class GenerationConfig(_Strict):
    max_new_tokens: int = Field(64, ge=1, description="Stop after this many new tokens.")
    batch_size: int = Field(8, ge=1, description="Samples per forward pass in an actor.")


class ResourcesConfig(_Strict):
    num_actors: int = Field(1, ge=1, description="Inference actors, each holding one model.")
    gpus_per_actor: float = Field(0, ge=0, description="GPUs per actor; 0 runs on CPU.")
    cpus_per_actor: float = Field(0.5, gt=0, description="CPUs per actor (fractional is fine).")


class ScoringConfig(_Strict):
    """How a run is scored; changes re-score the run without generating it again."""

    judge: str = Field(
        "exact",
        description="Judge of open-ended answers (video QA): exact, openai:MODEL[@BASE_URL], "
        "hf:PATH or replay:FILE. Checked by the jobs before any generation (eval/ owns judges).",
    )
    tagger: Literal["auto", "nltk_perceptron", "aptagger"] = Field(
        "auto", description="CHAIR's POS tagger; auto takes NLTK's own when its data is installed."
    )


class RunConfig(_Strict):
    model: ModelConfig = Field(default_factory=ModelConfig)
    method: MethodConfig = Field(default_factory=MethodConfig)
    benchmark: BenchmarkConfig
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    seed: int = Field(0, description="Seeds subsets and per-sample sampling generators.")
    output_dir: str = Field("runs", description="Runs are written to <output_dir>/<run_id>/.")

    @model_validator(mode="after")
    def _sgrs_candidates_fit(self) -> RunConfig:
        if self.method.max_rejections > self.method.top_k:
            raise ValueError(
                f"method.max_rejections ({self.method.max_rejections}) exceeds method.top_k "
                f"({self.method.top_k}); each rejection removes a candidate"
            )
        return self

    def identity(self) -> dict[str, Any]:
        """What decides the generated rows: all but resources, batch size, scoring and output dir."""
        data = self.model_dump(mode="json")
        data.pop("resources")
        data.pop("scoring")
        data.pop("output_dir")
        data["generation"].pop("batch_size")
        return data

    @property
    def config_hash(self) -> str:
        canonical = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def run_id(self) -> str:
        method = self.method.name.replace("+", "-")
        return f"{self.benchmark.name}-{self.model.name}-{method}-{self.config_hash[:12]}"

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.run_id


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: '{key}' is not a section")
    node[keys[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """`key.sub=value` with the value parsed as YAML (numbers, lists, null, booleans)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. --set method.alpha=0.3")
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw) if raw.strip() else ""


def _format_validation_error(error: ValidationError, source: str) -> str:
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            problems.append(f"unknown key '{key}' (check the spelling; see docs/config.md)")
        elif item["type"] == "missing":
            problems.append(f"missing required key '{key}'")
        else:
            message = item["msg"].removeprefix("Value error, ")
            problems.append(f"'{key}': {message}")
    return f"{source}: " + "; ".join(problems)


def build_config(data: dict[str, Any], overrides: list[str] = (), source: str = "config") -> RunConfig:
    """Validates a config dict after applying `key=value` overrides."""
    data = json.loads(json.dumps(data))  # deep copy, plain types only
    for text in overrides:
        key, value = parse_override(text)
        _set_dotted(data, key, value)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_format_validation_error(error, source)) from None


def load_config(path: str | Path, overrides: list[str] = ()) -> RunConfig:
    """Loads a YAML run config, applies `--set` overrides and validates it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; see configs/ for examples")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        where = " ".join(str(error).split())  # YAML's message spans lines; the CLI prints one
        raise ConfigError(f"{path}: not valid YAML ({error.__class__.__name__}: {where})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config sections at the top level")
    return build_config(data, overrides, source=str(path))


def write_config(config: RunConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
