"""The private transformers helpers the decode loop calls still exist and still do what it relies
on. When a transformers upgrade breaks one, the failing test's name and message name the helper.

The helpers are listed in pipeline/hf_compat.py (checked at every model load); here each one runs
on a real tiny model."""

from __future__ import annotations

import pytest
import torch
import transformers
from packaging.specifiers import SpecifierSet
from transformers import DynamicCache, LlavaForConditionalGeneration

from pipeline.hf_compat import TESTED_RANGE, IncompatibleTransformersError, check_private_helpers
from pipeline.models import MODELS

from test_models import batch_for, tiny


def test_installed_transformers_is_in_the_tested_range_that_pyproject_pins():
    assert transformers.__version__ in SpecifierSet(TESTED_RANGE), (
        f"transformers {transformers.__version__} is outside {TESTED_RANGE}: run this file, then widen the pin"
    )
    from conftest import REPO_ROOT

    assert f'"transformers{TESTED_RANGE}"' in (REPO_ROOT / "pyproject.toml").read_text()


@pytest.mark.parametrize("name", MODELS.names())
def test_every_family_passes_the_load_time_check(name):
    check_private_helpers(tiny(name).model)


def test_a_changed_helper_signature_fails_naming_the_helper():
    class Transformers4Style(LlavaForConditionalGeneration):
        # transformers 4.x: no next_sequence_length / is_first_iteration keywords.
        def prepare_inputs_for_generation(self, input_ids, past_key_values=None, **kwargs):
            return {}

    with pytest.raises(IncompatibleTransformersError) as raised:
        check_private_helpers(Transformers4Style)
    message = str(raised.value)
    assert "Transformers4Style.prepare_inputs_for_generation no longer takes next_sequence_length, is_first_iteration" in message
    assert transformers.__version__ in message and TESTED_RANGE in message and "\n" not in message


def test_a_missing_helper_fails_naming_the_helper():
    class WithoutPositionHelper:
        pass

    with pytest.raises(IncompatibleTransformersError, match=r"WithoutPositionHelper\._prepare_position_ids_for_generation no longer exists"):
        check_private_helpers(WithoutPositionHelper)


@pytest.fixture(scope="module")
def prefilled():
    """The tiny LLaVA's left-padded batch, its generation kwargs and one prefill forward."""
    loaded, inputs = batch_for("llava15")
    model = loaded.model
    input_ids = inputs["input_ids"]
    kwargs = {k: v for k, v in inputs.items() if k != "input_ids"}
    kwargs["use_cache"] = True
    with torch.no_grad():
        kwargs["position_ids"] = model._prepare_position_ids_for_generation(input_ids, kwargs)
        first = model.prepare_inputs_for_generation(input_ids, is_first_iteration=True, **kwargs)
        outputs = model(**first, return_dict=True)
    return model, input_ids, kwargs, first, outputs


def test_prepare_position_ids_for_generation_skips_left_padding(prefilled):
    _, input_ids, kwargs, _, _ = prefilled
    mask, positions = kwargs["attention_mask"], kwargs["position_ids"]
    assert positions.shape == input_ids.shape, "_prepare_position_ids_for_generation changed its output shape"
    for row in range(input_ids.shape[0]):
        real = mask[row].bool()
        assert positions[row, real].tolist() == list(range(int(real.sum()))), (
            "_prepare_position_ids_for_generation no longer numbers the real tokens from 0 after left padding"
        )


def test_prepare_inputs_for_generation_takes_pixels_first_and_one_position_after(prefilled):
    model, input_ids, kwargs, first, outputs = prefilled
    assert first["input_ids"].shape == input_ids.shape and "pixel_values" in first, (
        "prepare_inputs_for_generation(is_first_iteration=True) no longer passes the whole prompt and the pixels"
    )
    updated = model._update_model_kwargs_for_generation(outputs, dict(kwargs))
    assert updated["attention_mask"].shape[1] == input_ids.shape[1] + 1, (
        "_update_model_kwargs_for_generation no longer extends the attention mask by one column"
    )
    grown = torch.cat([input_ids, input_ids[:, -1:]], dim=1)
    step = model.prepare_inputs_for_generation(grown, next_sequence_length=1, **updated)
    assert step["input_ids"].shape == (input_ids.shape[0], 1), (
        "prepare_inputs_for_generation(next_sequence_length=1) no longer keeps only the new position"
    )
    assert step.get("pixel_values") is None, "prepare_inputs_for_generation passes pixels again after the first step"


def test_the_cache_exposes_per_layer_keys_values_and_crops_by_a_negative_count(prefilled):
    model, input_ids, _, _, outputs = prefilled
    cache = outputs.cache
    assert isinstance(cache, DynamicCache), "a forward with use_cache no longer returns a DynamicCache as outputs.cache"
    layers = model.config.get_text_config().num_hidden_layers
    assert len(cache.layers) == layers, "DynamicCache.layers no longer holds one entry per decoder layer"
    keys = cache.layers[0].keys
    assert keys.shape[0] == input_ids.shape[0] and keys.shape[2] == input_ids.shape[1], (
        "DynamicCache.layers[i].keys is no longer [batch, kv heads, positions, head dim]"
    )
    layer = cache.layers[0]
    layer.keys, layer.values = layer.keys.clone(), layer.values.clone()  # the loop reassigns them (detach)
    assert cache.get_seq_length() == input_ids.shape[1]
    rows = torch.tensor([1, 0])
    before = cache.layers[3].values.clone()
    cache.reorder_cache(rows)
    assert torch.equal(cache.layers[3].values, before[rows]), "DynamicCache.reorder_cache no longer reorders the batch rows"
    cache.crop(-1)
    assert cache.get_seq_length() == input_ids.shape[1] - 1, "DynamicCache.crop(-1) no longer drops the last position"
    assert cache.layers[5].keys.shape[2] == input_ids.shape[1] - 1


def test_attention_internals_the_halleval_attention_reads(prefilled):
    model = prefilled[0]
    assert model.config.get_text_config()._attn_implementation is not None, "config._attn_implementation is gone"
    assert "text_config" in model.config.sub_configs, "config.sub_configs no longer names the text config"
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import sdpa_mask

    assert callable(sdpa_attention_forward) and callable(sdpa_mask)
