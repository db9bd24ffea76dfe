"""Every registered model adapter, on its tiny random model: loading, the left-padded batch, the
visual token spans against what the model consumes, greedy decoding against `generate`, and the
error for a checkpoint that does not exist."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.api import LoadedModel, Visual
from pipeline.decoding import decode, greedy_select
from pipeline.models import MODELS
from pipeline.model_inputs import build_inputs, collate, sample_inputs

FAMILIES = {
    "llava15", "qwen2_vl", "qwen2_5_vl", "internvl", "video_llava", "llava_next_video",
    "qwen3_vl", "llava_onevision", "video_llama3",
}
PROMPTS = ["describe the image .", "is there a dog in the image ? answer yes or no ."]
NEW_TOKENS = 8
FRAMES = 4

_loaded: dict[str, LoadedModel] = {}


def tiny(name: str) -> LoadedModel:
    """Each tiny model once per test session: loading is what the tests below share."""
    if name not in _loaded:
        _loaded[name] = MODELS.get(name)().load("tiny", torch.float32, "cpu")
    return _loaded[name]


def visuals_for(modality: str) -> list[Visual]:
    """Two samples of different sizes: one image each, or FRAMES frames each for a video model."""
    rng = np.random.default_rng(0)

    def image(width: int, height: int) -> Image.Image:
        return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))

    if modality == "video":
        return [Visual([image(64, 48) for _ in range(FRAMES)], "video") for _ in range(2)]
    return [Visual([image(64, 48)], "image"), Visual([image(40, 60)], "image")]


def batch_for(name: str) -> tuple[LoadedModel, dict[str, torch.Tensor]]:
    loaded = tiny(name)
    return loaded, build_inputs(loaded, PROMPTS, visuals_for(loaded.adapter.modality))


def test_every_family_is_registered():
    assert FAMILIES <= set(MODELS.names())


@pytest.mark.parametrize("name", MODELS.names())
def test_tiny_model_loads_in_seconds_with_the_default_layers(name):
    adapter = MODELS.get(name)()
    start = time.perf_counter()
    loaded = adapter.load("tiny", torch.float32, "cpu")
    assert time.perf_counter() - start < 5.0
    _loaded.setdefault(name, loaded)

    assert adapter.name == name
    assert adapter.modality in ("image", "video")
    layers = loaded.model.config.get_text_config().num_hidden_layers
    l0, l1 = adapter.default_locore_layers
    assert 0 <= l0 <= l1 < layers
    assert all(0 <= layer < layers for layer in adapter.default_target_layers)
    assert adapter.default_locore_beta > 0
    assert not loaded.model.training


def test_locore_beta_defaults_follow_the_paper():
    assert MODELS.get("llava15")().default_locore_beta == 0.15
    assert MODELS.get("qwen2_vl")().default_locore_beta == 0.20


@pytest.mark.parametrize("name", MODELS.names())
def test_build_inputs_left_pads_a_batch_with_one_visual_span_per_row(name):
    loaded, inputs = batch_for(name)
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    assert ids.shape[0] == 2 and mask.shape == ids.shape
    assert bool(mask[:, -1].all()), "the batch must be left-padded"
    assert int(mask[0].sum()) < int(mask[1].sum()), "the shorter prompt is padded on the left"
    assert bool((mask[0, : int((mask[0] == 0).sum())] == 0).all())

    visual_ids = torch.tensor(sorted(loaded.adapter.visual_token_ids(loaded)))
    for row in range(2):
        positions = torch.isin(ids[row], visual_ids).nonzero().flatten()
        assert len(positions) > 0
        # One contiguous span, which is what the saliency key span "text after the visual" assumes
        # (InternVL's and Qwen's start/end markers included).
        assert int(positions[-1] - positions[0]) + 1 == len(positions)


@pytest.mark.parametrize("name", MODELS.names())
def test_samples_processed_one_by_one_and_collated_equal_the_processors_batch(name):
    """The pipeline runs the processor per sample in a CPU stage and batches in the actor; that
    must give exactly the processor's own batch: padding, pixel layout, grids, sizes."""
    loaded = tiny(name)
    rng = np.random.default_rng(1)
    sizes = [(64, 48), (40, 60), (160, 40)]  # a wide one: a different anyres patch count
    frames = FRAMES if loaded.adapter.modality == "video" else 1
    visuals = [Visual([Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for _ in range(frames)],
                      loaded.adapter.modality) for w, h in sizes]
    prompts = [*PROMPTS, "what is in the picture , and where ?"]
    expected = loaded.adapter.process(loaded.processor, prompts, visuals, None)
    items = [sample_inputs(loaded.processor, loaded.adapter, p, v, None) for p, v in zip(prompts, visuals)]
    got = collate(items, loaded.tokenizer.pad_token_id)
    tensors = {key: value for key, value in expected.items() if isinstance(value, torch.Tensor)}
    assert set(got) == set(tensors)
    for key, value in tensors.items():
        assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
        assert torch.equal(got[key], value), key
    assert int((got["attention_mask"] == 0).sum()) > 0, "the prompts differ in length, so the batch is padded"


@pytest.mark.parametrize("name", MODELS.names())
def test_visual_placeholders_are_exactly_where_the_model_puts_visual_features(name):
    loaded, inputs = batch_for(name)
    model = loaded.model
    captured = {}

    def keep_embeds(module, args, kwargs):
        captured["embeds"] = kwargs["inputs_embeds"]

    hook = model.model.language_model.register_forward_pre_hook(keep_embeds, with_kwargs=True)
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        hook.remove()

    ids = inputs["input_ids"]
    with torch.no_grad():
        text_embeds = model.get_input_embeddings()(ids)
    replaced = (captured["embeds"] != text_embeds).any(dim=-1)
    config = model.config
    placeholders = torch.isin(ids, torch.tensor([config.image_token_id, getattr(config, "video_token_id", -1)]))
    assert bool(placeholders.any(dim=1).all())
    assert torch.equal(replaced, placeholders)
    visual_ids = torch.tensor(sorted(loaded.adapter.visual_token_ids(loaded)))
    assert bool(torch.isin(ids[replaced], visual_ids).all())


@pytest.mark.parametrize("name", MODELS.names())
def test_greedy_decode_equals_generate_token_for_token(name):
    loaded, inputs = batch_for(name)
    generators = [torch.Generator().manual_seed(row) for row in range(2)]
    ours = decode(loaded, inputs, NEW_TOKENS, generators, greedy_select)
    with torch.no_grad():
        reference = loaded.model.generate(
            **inputs, do_sample=False, max_new_tokens=NEW_TOKENS, return_dict_in_generate=True, output_scores=True
        )
    prompt_length = inputs["input_ids"].shape[1]
    eos = loaded.eos_token_ids
    for row, generation in enumerate(ours):
        expected = reference.sequences[row, prompt_length:].tolist()
        stop = next((i + 1 for i, token in enumerate(expected) if token in eos), len(expected))
        assert generation.token_ids == expected[:stop]
        assert len(set(generation.token_ids)) > 1, "a constant output would make this comparison weak"
        expected_logprobs = [
            float(torch.log_softmax(scores[row].float(), dim=-1)[token])
            for scores, token in zip(reference.scores, expected[:stop])
        ]
        np.testing.assert_allclose(generation.logprobs, expected_logprobs, atol=1e-4)


@pytest.mark.parametrize("name", MODELS.names())
def test_a_missing_checkpoint_is_one_clear_line_naming_the_path(name, tmp_path):
    missing = str(tmp_path / "no-such-checkpoint")
    with pytest.raises(ValueError) as raised:
        MODELS.get(name)().load(missing, torch.float32, "cpu")
    message = str(raised.value)
    assert "\n" not in message
    assert f"cannot load model {name!r} from {missing!r}" in message
    assert "pass a local checkpoint folder or a hub id" in message


def test_an_existing_folder_without_weights_is_reported_the_same_way(tmp_path):
    with pytest.raises(ValueError, match="cannot load model 'internvl' from .*pass a local checkpoint folder"):
        MODELS.get("internvl")().load(str(tmp_path), torch.float32, "cpu")


@pytest.mark.parametrize("name", [n for n in MODELS.names() if MODELS.get(n)().modality == "video"])
def test_a_video_model_refuses_a_still_image(name):
    loaded = tiny(name)
    with pytest.raises(ValueError, match="needs video frames"):
        build_inputs(loaded, PROMPTS[:1], visuals_for("image")[:1])


def test_the_model_guide_documents_every_registered_family():
    guide = (Path(__file__).parents[1] / "docs" / "models.md").read_text()
    for name in MODELS.names():
        assert f"`{name}`" in guide
