"""The one config object of a run, validated at load and hashed into the run id.

A run is (model, decoding method, benchmark, generation limits, seed). Resources, batch size and
the output folder do not change what is generated, so they stay out of the run id: the same run
on 1 or 8 actors writes to the same place and resumes there.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal, Union

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


class _MethodMeta(type(BaseModel)):
    """Makes `MethodConfig(name=..., ...)` build that method's own parameter class."""

    def __call__(cls, *args, **data):
        if cls is MethodConfig:
            name = data.get("name", "greedy")
            if name not in METHOD_CONFIGS:
                from pipeline.methods import METHODS

                raise ConfigError(METHODS.unknown_message(name))
            return METHOD_CONFIGS[name](*args, **data)
        return super().__call__(*args, **data)


def _arg(default: Any, description: str, goes_to: str, in_run_id: bool, **constraints: Any) -> Any:
    """A ModelArgs field: where it is passed ('model', 'processor' or 'both' from_pretrained calls)
    and whether it can change the generated rows (then it is part of the run id)."""
    where = {"model": "model", "processor": "processor", "both": "model and processor"}[goes_to]
    identity = "in the run id" if in_run_id else "not in the run id (placement only)"
    return Field(
        default, description=f"{description} Passed to the {where} from_pretrained; {identity}.",
        json_schema_extra={"goes_to": goes_to, "in_run_id": in_run_id}, **constraints,
    )


class ModelArgs(_Strict):
    """Keyword arguments for a checkpoint's `from_pretrained` calls (model and AutoProcessor).

    Each field says where it goes and whether it can change what is generated: those that can
    (a revision, an attention kernel, the image resolution) enter the run id; placement and cache
    settings (device_map, max_memory, cache_dir, local_files_only) do not, so the same run on one
    GPU or spread over four resumes in the same folder. Unset fields are not passed at all, so the
    checkpoint's own defaults apply.
    """

    revision: str | None = _arg(
        None, "Hub branch, tag or commit of the checkpoint (pin a commit for reproducible runs).", "both", True
    )
    trust_remote_code: bool = _arg(
        False, "Allow the checkpoint's own Python code; adapters load transformers' native model "
        "classes, so this only lets AutoProcessor/AutoConfig run a remote processor or config.", "both", True,
    )
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2", "flash_attention_3"] | None = _arg(
        None, "Attention kernel of the vision tower (and of the language model under greedy/sample; "
        "saliency and LocoRE methods replace the language model's with the halleval attention). "
        "Kernels round differently, which can flip a greedy tie.", "model", True,
    )
    device_map: Literal["auto", "balanced", "balanced_low_0", "sequential"] | None = _arg(
        None, "How layers spread over the actor's GPUs; None lets resources.gpus_per_actor decide "
        "('auto' when it is above 1, else the whole model on one device).", "model", False,
    )
    max_memory: dict[str, str] | None = _arg(
        None, "Per-device memory cap for device_map, e.g. {'0': '60GiB', '1': '75GiB'} (device "
        "indices as the actor sees them).", "model", False,
    )
    cache_dir: str | None = _arg(None, "Hub download cache folder.", "both", False)
    local_files_only: bool = _arg(
        False, "Never contact the hub (air-gapped clusters with a pre-filled cache).", "both", False
    )
    min_pixels: int | None = _arg(
        None, "Qwen-VL families: lower bound on an image's pixel count after resizing (fewer "
        "pixels are upscaled); sets how many visual tokens an image gets.", "processor", True, ge=1,
    )
    max_pixels: int | None = _arg(
        None, "Qwen-VL families: upper bound on an image's pixel count (larger images are "
        "downscaled), e.g. 1280*28*28 as Qwen's model cards suggest.", "processor", True, ge=1,
    )
    max_patches: int | None = _arg(
        None, "InternVL: most tiles an image is cut into (the checkpoints use 12, plus a thumbnail).",
        "processor", True, ge=1,
    )

    @model_validator(mode="after")
    def _pixel_bounds_ordered(self) -> ModelArgs:
        if self.min_pixels is not None and self.max_pixels is not None and self.min_pixels > self.max_pixels:
            raise ValueError(f"min_pixels ({self.min_pixels}) exceeds max_pixels ({self.max_pixels})")
        return self

    def _set(self, where: set[str], in_run_id: bool | None = None) -> dict[str, Any]:
        values = {}
        for name, field in type(self).model_fields.items():
            extra = field.json_schema_extra
            if extra["goes_to"] not in where or (in_run_id is not None and extra["in_run_id"] != in_run_id):
                continue
            value = getattr(self, name)
            if value != field.default:
                values[name] = value
        return values

    def model_kwargs(self) -> dict[str, Any]:
        """The set arguments of the model's from_pretrained (max_memory's GPU indices as ints)."""
        values = self._set({"model", "both"})
        if "max_memory" in values:
            values["max_memory"] = {int(k) if k.isdigit() else k: v for k, v in values["max_memory"].items()}
        return values

    def processor_kwargs(self) -> dict[str, Any]:
        """The set arguments of AutoProcessor.from_pretrained."""
        return self._set({"processor", "both"})

    def identity(self) -> dict[str, Any]:
        """The set arguments that can change outputs (what enters the run id)."""
        return self._set({"model", "processor", "both"}, in_run_id=True)


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
    args: ModelArgs = Field(
        default_factory=ModelArgs,
        description="Arguments of the checkpoint's from_pretrained calls (revision, device_map, "
        "min_pixels, ...); see docs/models.md for which reach the model, the processor, the run id.",
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

    @model_validator(mode="after")
    def _args_fit_the_checkpoint(self) -> ModelConfig:
        set_args = sorted(self.args.model_kwargs().keys() | self.args.processor_kwargs().keys())
        if self.checkpoint == "tiny" and set_args:
            raise ValueError(
                f"model.args {', '.join(set_args)} apply to a checkpoint loaded with from_pretrained; "
                "'tiny' is built in memory, so remove them or set model.checkpoint"
            )
        from pipeline.models import MODELS

        accepted = set(getattr(MODELS.get(self.name), "processor_args", ()))
        foreign = [name for name in ("min_pixels", "max_pixels", "max_patches")
                   if getattr(self.args, name) is not None and name not in accepted]
        if foreign:
            takes = f"it takes {', '.join(sorted(accepted))}" if accepted else "it takes none of them"
            raise ValueError(f"model.args {', '.join(foreign)} is not a setting of {self.name!r}'s processor; {takes}")
        return self

    def identity(self) -> dict[str, Any]:
        """Name, checkpoint, dtype, the conversation and the output-changing args; `args` is left
        out while none is set, and `conversation` while the adapter offers none, so run ids from
        before those fields existed stay the same (llava15's changed once with its template)."""
        data = {"name": self.name, "checkpoint": self.checkpoint, "dtype": self.dtype}
        if self.conversation is not None:
            data["conversation"] = self.conversation
        if self.args.identity():
            data["args"] = self.args.identity()
        return data


class MethodConfig(_Strict, metaclass=_MethodMeta):
    """Base of every decoding method's parameters: one subclass per registered method, told apart
    by `name` (a discriminated union), so a run holds, and hashes, only its own method's
    parameters and an unused key is an error. `MethodConfig(name="sgrs", alpha=0.3)` builds the
    `SgrsConfig`; a missing name means greedy."""

    name: str = Field("greedy", description="Registered decoding method (see docs/methods.md).")


def _name(method: str) -> Any:
    return Field(method, description="Registered decoding method (see docs/methods.md).")


class _SaliencyRecording(_Strict):
    key_span: Literal["post_image", "outputs"] = Field(
        "post_image",
        description="Saliency keys: text after the image (official code) or generated tokens only.",
    )
    target_layers: tuple[int, ...] | None = Field(
        None, description="Saliency layers; None takes the model adapter's default."
    )


class _RecordsSaliency(_SaliencyRecording):
    record_saliency: bool = Field(
        False, description="Record the saliency of each accepted token too (a backward per step)."
    )


class _Temperature(_Strict):
    temperature: float = Field(1.0, gt=0, description="Softmax temperature of the sampled distribution.")


class _Locore(_Strict):
    beta: float | None = Field(
        None, ge=0, description="LocoRE gain, gamma = 1 + beta; None takes the adapter's default."
    )
    locore_window: int = Field(8, ge=1, description="LocoRE: w_s, outputs at distance <= w_s gain.")
    locore_layers: tuple[int, int] | None = Field(
        None, description="LocoRE: first and last layer [l0, l1]; None takes the adapter's default."
    )
    renormalize: bool = Field(False, description="LocoRE: renormalise the attention row after gain.")


class _Sgrs(_Temperature, _SaliencyRecording):
    top_k: int = Field(5, ge=1, description="SGRS: K candidates per step (top-K of the softmax).")
    max_rejections: int = Field(3, ge=1, description="SGRS: R draws before the fallback.")
    alpha: float = Field(0.6, ge=0, description="SGRS: threshold factor, tau = alpha * mean(history).")
    history_window: int = Field(5, ge=1, description="SGRS: W, accepted saliencies averaged for tau.")
    saliency_scale: float = Field(
        1.0, gt=0, description="SGRS: r, multiplies S(c) before the test (paper Table 6)."
    )
    fallback_in_history: bool = Field(
        False,
        description="SGRS: add a fallback token's saliency to the history (official code); the "
        "paper's Alg. 1 keeps it out (default).",
    )
    record_candidates: bool = Field(
        False, description="SGRS: store the K candidates and their saliencies per token (large)."
    )

    @model_validator(mode="after")
    def _candidates_fit(self):
        if self.max_rejections > self.top_k:
            raise ValueError(
                f"method.max_rejections ({self.max_rejections}) exceeds method.top_k "
                f"({self.top_k}); each rejection removes a candidate"
            )
        return self


class _Beams(_Strict):
    num_beams: int = Field(5, ge=1, description="Beams kept per sample.")
    length_penalty: float = Field(
        1.0, description="A finished beam's score is sum(log p) / length ** length_penalty (as HF)."
    )


class GreedyConfig(_RecordsSaliency, MethodConfig):
    """Argmax decoding; its only options record saliency."""

    name: Literal["greedy"] = _name("greedy")


class SampleConfig(_Temperature, _RecordsSaliency, MethodConfig):
    """Ancestral sampling at a temperature, optionally nucleus (top-p) truncated."""

    name: Literal["sample"] = _name("sample")
    top_p: float = Field(
        1.0, gt=0, le=1, description="Nucleus sampling: keep the smallest top set with mass >= top_p (1: all)."
    )


class LocoreConfig(_Locore, _RecordsSaliency, MethodConfig):
    """Greedy decoding with LocoRE attention (paper Alg. 2)."""

    name: Literal["locore"] = _name("locore")


class SgrsConfig(_Sgrs, MethodConfig):
    """Saliency-guided rejection sampling (paper Alg. 1)."""

    name: Literal["sgrs"] = _name("sgrs")


class SgrsLocoreConfig(_Sgrs, _Locore, MethodConfig):
    """SGRS over LocoRE attention."""

    name: Literal["sgrs+locore"] = _name("sgrs+locore")


class BeamConfig(_Beams, MethodConfig):
    """Beam search, token for token HF's `generate(num_beams=...)` (early_stopping False)."""

    name: Literal["beam"] = _name("beam")


class VcdConfig(_Temperature, MethodConfig):
    """Visual contrastive decoding (Leng et al., CVPR 2024); defaults from its evaluation scripts."""

    name: Literal["vcd"] = _name("vcd")
    cd_alpha: float = Field(1.0, ge=0, description="VCD: contrast strength, (1 + a) l(v) - a l(v').")
    cd_beta: float = Field(
        0.1, ge=0, le=1, description="VCD: adaptive plausibility, keep tokens with p >= beta * max p."
    )
    noise_step: int = Field(500, ge=0, le=999, description="VCD: diffusion step t of the noise (of 1000).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus truncation after the contrast (1: none).")


class OperaConfig(_Beams, MethodConfig):
    """OPERA (Huang et al., CVPR 2024): beam search with the over-trust penalty and
    retrospection-allocation rollback; defaults from its code (chair_eval.py)."""

    name: Literal["opera"] = _name("opera")
    scale_factor: float = Field(50.0, gt=0, description="OPERA: sigma, scales attention before the column product.")
    threshold: int = Field(15, ge=1, description="OPERA: r, steps a summary location must repeat to roll back.")
    num_attn_candidates: int = Field(5, ge=1, description="OPERA: N_can candidates per beam scored by the penalty.")
    penalty_weights: float = Field(1.0, ge=0, description="OPERA: alpha, weight of the penalty on the logits.")
    window_size: int = Field(512, ge=1, description="OPERA: steps of history kept for rollback.")
    rollback: bool = Field(True, description="OPERA: retrospection-allocation rollback (off: penalty only).")


class DolaConfig(MethodConfig):
    """DoLa (Chuang et al., ICLR 2024), greedy over the contrasted layer distributions."""

    name: Literal["dola"] = _name("dola")
    dola_layers: Literal["low", "high"] | tuple[int, ...] = Field(
        "high",
        description="Candidate premature layers: 'low'/'high' halves (as HF's dola_layers) or "
        "hidden-state indices (0 = embeddings); the final layer is the mature one.",
    )
    relative_top: float = Field(
        0.1, gt=0, le=1, description="DoLa: plausibility, keep tokens with p_final >= relative_top * max."
    )
    repetition_penalty: float = Field(
        1.2, ge=1, description="DoLa: CTRL repetition penalty on tokens already in the sequence (1: off)."
    )


METHOD_CONFIGS: dict[str, type[MethodConfig]] = {
    cls.model_fields["name"].default: cls
    for cls in (
        GreedyConfig, SampleConfig, LocoreConfig, SgrsConfig, SgrsLocoreConfig,
        BeamConfig, VcdConfig, OperaConfig, DolaConfig,
    )
}
"""Each registered method's parameter class, by method name."""

AnyMethodConfig = Annotated[Union[tuple(METHOD_CONFIGS.values())], Field(discriminator="name")]  # noqa: UP007


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
    gpus_per_actor: float = Field(
        0, ge=0,
        description="GPUs per actor; 0 runs on CPU, a fraction below 1 shares a GPU between actors, "
        "a whole number N above 1 spreads one model over N GPUs (device_map over the actor's GPUs).",
    )
    cpus_per_actor: float = Field(0.5, gt=0, description="CPUs per actor (fractional is fine).")
    input_workers: int = Field(
        1, ge=1,
        description="CPU worker processes (0.25 CPU each) that read the queue, decode images and videos "
        "and run the processor for all the actors; raise it when many actors, or video, wait for input.",
    )
    wait_for_resources_s: float = Field(
        0, ge=0,
        description="When the Ray cluster cannot hold the actors, wait this long for an autoscaler to "
        "add nodes (logging what is missing) before failing; 0 fails at once.",
    )

    @field_validator("gpus_per_actor")
    @classmethod
    def _whole_gpus_above_one(cls, gpus: float) -> float:
        if gpus > 1 and gpus != int(gpus):
            raise ValueError(f"{gpus} GPUs: above 1, an actor holds whole GPUs (2, 4, 8, ...)")
        return gpus


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
    method: AnyMethodConfig = Field(
        default_factory=GreedyConfig, description="Decoding method: `name` and that method's parameters."
    )
    benchmark: BenchmarkConfig
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    seed: int = Field(
        0, description="Seeds subsets and per-sample sampling generators; 0 to 2**63-1 (stored as int64)."
    )
    output_dir: str = Field("runs", description="Runs are written to <output_dir>/<run_id>/.")

    @field_validator("seed")
    @classmethod
    def _seed_fits_int64(cls, seed: int) -> int:
        # The seed is a column of every generation row (int64); a larger one would pass here and
        # then kill the run inside an actor.
        if not 0 <= seed < 2**63:
            raise ValueError(f"seed {seed} is outside 0 to 2**63-1 (9223372036854775807); pick a smaller seed")
        return seed

    @field_validator("method", mode="before")
    @classmethod
    def _method_name_defaults_to_greedy(cls, method: Any) -> Any:
        if isinstance(method, dict) and "name" not in method:
            return {**method, "name": "greedy"}
        return method

    def identity(self) -> dict[str, Any]:
        """What decides the generated rows: all but resources, batch size, scoring, output dir and
        the model.args that only place the model (ModelConfig.identity)."""
        data = self.model_dump(mode="json")
        data.pop("resources")
        data.pop("scoring")
        data.pop("output_dir")
        data["generation"].pop("batch_size")
        data["model"] = self.model.identity()
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


def _error_key(loc: tuple) -> tuple[str, list[str]]:
    """The dotted key of an error location (a method's tag, which pydantic puts after `method`,
    dropped) and the keys its section knows, for a did-you-mean hint."""
    parts = [str(part) for part in loc]
    known: list[str] = []
    if parts[:1] == ["method"] and len(parts) > 1 and parts[1] in METHOD_CONFIGS:
        known = list(METHOD_CONFIGS[parts.pop(1)].model_fields)
    elif len(parts) > 1 and parts[0] in RunConfig.model_fields:
        section = RunConfig.model_fields[parts[0]].annotation
        known = list(getattr(section, "model_fields", {}))
    elif len(parts) == 1:
        known = list(RunConfig.model_fields)
    return ".".join(parts) or "(top level)", known


def _format_validation_error(error: ValidationError, source: str) -> str:
    problems = []
    for item in error.errors():
        key, known = _error_key(item["loc"])
        if item["type"] == "extra_forbidden":
            section, _, name = key.rpartition(".")
            close = difflib.get_close_matches(name, known, n=1)
            if close:
                hint = f"; did you mean '{section + '.' if section else ''}{close[0]}'?"
            elif item["loc"][:1] == ("method",) and len(item["loc"]) > 2:
                hint = f"; method {item['loc'][1]!r} takes: {', '.join(k for k in known if k != 'name') or 'nothing'}"
            else:
                hint = " (check the spelling)"
            problems.append(f"unknown key '{key}'{hint} (see docs/config.md)")
        elif item["type"] == "missing":
            problems.append(f"missing required key '{key}'")
        elif item["type"] == "union_tag_invalid":
            from pipeline.methods import METHODS

            problems.append(f"'{key}.name': {METHODS.unknown_message(item['ctx']['tag'])}")
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
