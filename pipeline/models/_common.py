"""Helpers that every model adapter shares.

- Loading: `load_model` builds the tiny model or loads a checkpoint with the run's `model.args`
  (`load_pretrained`, which turns any failure into one clear line), checks the private
  transformers helpers the decode loop calls (`pipeline.hf_compat`) and finishes it
  (`finish_load`: left padding, dtype, device, eval mode) into a LoadedModel. `actor_placement`
  picks an inference actor's device and device_map from `resources.gpus_per_actor`.
- The processor alone (`processor_only`), for the pipeline's CPU stage, which runs it per sample.
- Processing: `chat_template_image_inputs` (one image per prompt through the checkpoint's chat
  template) and `fixed_template_video_inputs` (frames with a fixed conversation template), the
  bodies of most adapters' `process`.
- `FrameVideoProcessor`: a video processor that needs no torchvision.

A private module (leading underscore), so the MODELS registry does not import it as a plugin.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
from transformers import AutoConfig, AutoImageProcessor, AutoProcessor, AutoTokenizer, BatchFeature
from transformers import processing_utils
from transformers.models.auto.processing_auto import PROCESSOR_MAPPING
from transformers.video_processing_utils import VideoProcessorMixin

from pipeline.api import LoadedModel, ModelAdapter, Visual
from pipeline.config import ModelArgs
from pipeline.hf_compat import check_private_helpers

T = TypeVar("T")

# A processor checks its video_processor against the class named "VideoProcessorMixin", looked up
# on `processing_utils.transformers_module`, which does not export that name (5.24); without
# torchvision the fallback lookup fails too. Exporting the alias lets a processor accept
# FrameVideoProcessor. That module object is processing_utils' own import of transformers (the
# lazy `transformers` in sys.modules can be a different object), so the alias goes on it.
if not hasattr(processing_utils.transformers_module, "VideoProcessorMixin"):
    processing_utils.transformers_module.VideoProcessorMixin = VideoProcessorMixin


def load_pretrained(adapter_name: str, checkpoint: str, load: Callable[[], T]) -> T:
    """Runs `load` (the from_pretrained calls) and turns any failure into one clear line.

    Args:
        adapter_name: the registered model name, e.g. "qwen2_vl".
        checkpoint: the local folder or hub id the user passed.
        load: a function that loads the model and processor from `checkpoint`.

    Returns:
        What `load` returns.

    Raises:
        ValueError: "cannot load model '<name>' from '<checkpoint>': <reason> — pass a local
            checkpoint folder or a hub id".
    """
    hint = "pass a local checkpoint folder or a hub id"
    looks_like_path = os.path.isabs(checkpoint) or checkpoint.startswith((".", "~"))
    if looks_like_path and not os.path.exists(os.path.expanduser(checkpoint)):
        # A missing folder would otherwise surface as a hub-id validation error, which misleads.
        raise ValueError(f"cannot load model {adapter_name!r} from {checkpoint!r}: no such folder — {hint}")
    try:
        return load()
    except ImportError as error:
        if "torchvision" not in str(error).lower():
            raise ValueError(f"cannot load model {adapter_name!r} from {checkpoint!r}: {_first_line(error)}") from error
        raise ValueError(
            f"cannot load model {adapter_name!r} from {checkpoint!r}: its video processor needs torchvision, "
            "which is not installed — install the torchvision build that matches torch (a CUDA install of "
            "torch brings it)"
        ) from error
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot load model {adapter_name!r} from {checkpoint!r}: {_first_line(error)} — {hint}") from error


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def finish_load(adapter: ModelAdapter, model: Any, processor: Any, dtype: torch.dtype, device: str) -> LoadedModel:
    """Left-pads the tokenizer (the decode loop appends on the right), casts, moves, sets eval
    mode and freezes the weights.

    A model that from_pretrained spread over several devices (`hf_device_map`) stays where it is;
    its inputs then go to the device of its input embeddings, where its forward starts.
    Frozen from the start, not only when a method installs the halleval attention: on some CPUs
    (seen on an AMX Xeon) a Linear on a non-contiguous input takes another GEMM path when its
    weight requires grad, so greedy and LocoRE with beta 0 disagreed in the last bits.
    """
    processor.tokenizer.padding_side = "left"
    if spread_over_devices(model):
        device = str(model.get_input_embeddings().weight.device)
        model = model.eval()
    else:
        model = model.to(device=device, dtype=dtype).eval()
    model.requires_grad_(False)
    return LoadedModel(model=model, processor=processor, tokenizer=processor.tokenizer, adapter=adapter, device=device)


def spread_over_devices(model: Any) -> bool:
    """Whether from_pretrained placed the model's modules on more than one device (or offloaded
    some), in which case accelerate's hooks move activations between them."""
    device_map = getattr(model, "hf_device_map", None) or {}
    return len(set(device_map.values())) > 1


def actor_placement(gpus_per_actor: float, args: ModelArgs) -> tuple[str, ModelArgs]:
    """Where an inference actor puts its model: the input device and the from_pretrained args.

    Ray makes an actor's GPUs its only visible CUDA devices, so `device_map="auto"` spreads the
    model over exactly those. Above one GPU per actor the map defaults to "auto"; a user's own
    `model.args.device_map` wins.

    Args:
        gpus_per_actor: resources.gpus_per_actor of the run.
        args: model.args of the run.

    Returns:
        ("cuda" or "cpu", the args with device_map filled in where the model spans GPUs).
    """
    if gpus_per_actor <= 0 or not torch.cuda.is_available():
        return "cpu", args
    if gpus_per_actor > 1 and args.device_map is None:
        args = args.model_copy(update={"device_map": "auto"})
    return "cuda", args


def load_model(
    adapter: ModelAdapter,
    checkpoint: str,
    dtype: torch.dtype,
    device: str,
    model_class: Any,
    build_tiny: Callable[[], tuple[Any, Any]],
    args: ModelArgs | None = None,
) -> LoadedModel:
    """'tiny' builds the adapter's random model offline; anything else is a folder or hub id.

    Args:
        adapter: the adapter being loaded (its name goes into load errors).
        checkpoint: "tiny", a local checkpoint folder or a hub id.
        dtype: weights dtype.
        device: where the model runs (its first device when `args.device_map` spreads it).
        model_class: the transformers class, e.g. LlavaForConditionalGeneration.
        build_tiny: builds (model, processor) of the tiny random variant.
        args: model.args, passed to the model's and the processor's from_pretrained. A tiny
            model ignores device_map (it fits one device).
    """
    args = args or ModelArgs()
    if checkpoint == "tiny":
        model, processor = build_tiny()
    else:
        model_kwargs = args.model_kwargs()
        if "device_map" in model_kwargs and device == "cuda":
            # "auto" over the actor's GPUs only: without this accelerate may also use the CPU.
            model_kwargs.setdefault("max_memory", _gpu_memory_caps())
        model, processor = load_pretrained(adapter.name, checkpoint, lambda: (
            model_class.from_pretrained(checkpoint, dtype=dtype, **model_kwargs),
            load_processor(checkpoint, args, image_only=adapter.modality == "image"),
        ))
    check_private_helpers(model)
    return finish_load(adapter, model, processor, dtype, device)


def processor_only(adapter: Any, checkpoint: str, args: ModelArgs | None = None) -> Any:
    """The processor of `adapter`'s checkpoint without its model: what the pipeline's CPU stage
    runs per sample. A "tiny" checkpoint's processor is built with its model (it is seconds at
    most), so that one builds both and keeps the processor."""
    args = args or ModelArgs()
    if checkpoint == "tiny":
        processor = adapter.build_tiny()[1]
    else:
        image_only = adapter.modality == "image"
        processor = load_pretrained(adapter.name, checkpoint, lambda: load_processor(checkpoint, args, image_only))
    processor.tokenizer.padding_side = "left"
    return processor


def load_processor(checkpoint: str, args: ModelArgs, image_only: bool) -> Any:
    """The checkpoint's processor (AutoProcessor), with `model.args`' processor settings.

    The image families' processors (Qwen-VL, InternVL, LLaVA-OneVision, VideoLLaMA3) also hold a
    video processor, and transformers' video processors need torchvision, which a CPU install of
    torch lacks. An image run never calls it, so for an image family the processor is then built
    from the checkpoint's own tokenizer, image processor, chat template and processor settings,
    with `FrameVideoProcessor` in the video slot. A video family keeps the ImportError, which
    `load_pretrained` reports in one line.
    """
    kwargs = args.processor_kwargs()
    try:
        return AutoProcessor.from_pretrained(checkpoint, **kwargs)
    except ImportError as error:
        if not image_only or "torchvision" not in str(error).lower():
            raise
    hub = {k: v for k, v in kwargs.items() if k in ("revision", "cache_dir", "local_files_only", "trust_remote_code")}
    processor_class = PROCESSOR_MAPPING[type(AutoConfig.from_pretrained(checkpoint, **hub))]
    image_processor = AutoImageProcessor.from_pretrained(checkpoint, **kwargs)
    settings, _ = processor_class.get_processor_dict(checkpoint, **hub)
    accepted = inspect.signature(processor_class.__init__).parameters
    own = {k: v for k, v in settings.items() if k in accepted and k not in processor_class.get_attributes()}
    return processor_class(
        image_processor=image_processor, tokenizer=AutoTokenizer.from_pretrained(checkpoint, **hub),
        video_processor=FrameVideoProcessor(image_processor), **own,
    )


def _gpu_memory_caps() -> dict[int, int]:
    """Every visible GPU's free memory, as device_map's max_memory (no CPU entry)."""
    return {index: torch.cuda.mem_get_info(index)[0] for index in range(torch.cuda.device_count())}


def chat_template_image_inputs(processor: Any, prompts: Sequence[str], visuals: Sequence[Visual]) -> BatchFeature:
    """One image per prompt, placed by the checkpoint's own chat template (Qwen-VL, InternVL)."""
    texts = []
    for prompt in prompts:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        texts.append(processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
    return processor(images=[visual.images[0] for visual in visuals], text=texts, padding=True, return_tensors="pt")


def fixed_template_video_inputs(
    processor: Any, prompts: Sequence[str], visuals: Sequence[Visual], template: str
) -> BatchFeature:
    """Each sample's frames with its prompt in a fixed conversation `template` ("{prompt}")."""
    return processor(
        videos=frames_of(visuals), text=[template.format(prompt=p) for p in prompts],
        padding=True, return_tensors="pt",
    )


def frames_of(visuals: Sequence[Visual]) -> list[list[Any]]:
    """The sampled frames of each video in a batch, checking that every sample is a video."""
    for visual in visuals:
        if visual.modality != "video":
            raise ValueError(f"a video model needs video frames, got a {visual.modality!r} visual")
    return [list(visual.images) for visual in visuals]


class FrameVideoProcessor(VideoProcessorMixin):
    """A video processor that runs a PIL image processor over each video's frames.

    transformers' own video processors need torchvision, which does not install beside the CPU
    torch used here. The frames a video benchmark samples (PyAV) arrive as PIL images, so the
    model's PIL image processor gives the same pixels; this class stacks them into
    `pixel_values_videos` [videos, frames, channels, height, width], the layout that the CLIP-style
    video models (Video-LLaVA, LLaVA-NeXT-Video, InternVL) and their processors' video-token
    expansion expect.

    Args:
        image_processor: a PIL image processor whose output has one `pixel_values` row per frame.
    """

    model_input_names = ("pixel_values_videos",)

    def __init__(self, image_processor: Any) -> None:
        super().__init__()
        self.image_processor = image_processor

    def preprocess(self, videos: Sequence[Sequence[Any]], **kwargs: Any) -> BatchFeature:
        """Processes a batch of videos, each a list of PIL frames of the same length."""
        pixels = [self.image_processor(list(frames), return_tensors="pt")["pixel_values"] for frames in videos]
        return BatchFeature({"pixel_values_videos": torch.stack(pixels)}, tensor_type=kwargs.get("return_tensors"))
