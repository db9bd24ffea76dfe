"""The private transformers helpers the decode loop and the halleval attention rely on.

The decode loop (`pipeline/decoding.py`) drives a model exactly as `generate` does, which means
calling helpers transformers does not promise to keep: `_prepare_position_ids_for_generation`,
`_update_model_kwargs_for_generation`, `prepare_inputs_for_generation`'s `next_sequence_length`
and `is_first_iteration` keywords, the per-layer `keys`/`values` of `DynamicCache.layers`,
`DynamicCache.crop` and `reorder_cache`; `pipeline/attention.py` reads
`config._attn_implementation` and imports `sdpa_attention_forward` and `sdpa_mask`.
pyproject.toml pins transformers to the range these were tested on; `check_private_helpers`
runs at every model load, so an upgrade outside it fails at once with the helper's name instead
of deep inside a decode step. tests/test_hf_compat.py also checks what each helper does.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

TESTED_RANGE = ">=5.24,<5.25"
"""The transformers versions tests/test_hf_compat.py passed on (pyproject.toml pins the same)."""


class IncompatibleTransformersError(RuntimeError):
    """A private transformers helper the decode loop calls is missing or changed its signature."""


# (name, parameters the pipeline passes by name or relies on)
_MODEL_METHODS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("_prepare_position_ids_for_generation", ("inputs_tensor", "model_kwargs")),
    ("_update_model_kwargs_for_generation", ("outputs", "model_kwargs")),
    ("prepare_inputs_for_generation", ("next_sequence_length", "is_first_iteration")),
    ("_expand_inputs_for_generation", ("expand_size",)),
    ("set_attn_implementation", ()),
)
_CACHE_METHODS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("crop", ("tokens_to_remove",)),
    ("reorder_cache", ("beam_idx",)),
    ("get_seq_length", ()),
)
_MODULE_ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("transformers.integrations.sdpa_attention", "sdpa_attention_forward"),
    ("transformers.masking_utils", "sdpa_mask"),
    ("transformers.masking_utils", "AttentionMaskInterface"),
    ("transformers", "AttentionInterface"),
    ("transformers", "DynamicCache"),
)


def _fail(helper: str, problem: str) -> IncompatibleTransformersError:
    import transformers

    return IncompatibleTransformersError(
        f"transformers {transformers.__version__}: {helper} {problem}; halleval's decode loop needs it "
        f"(tested with transformers{TESTED_RANGE}) — install a version in that range, or update "
        "pipeline/decoding.py and pipeline/attention.py and re-run tests/test_hf_compat.py"
    )


def _check_method(owner: Any, owner_name: str, name: str, keywords: tuple[str, ...]) -> None:
    method: Callable[..., Any] | None = getattr(owner, name, None)
    helper = f"{owner_name}.{name}"
    if not callable(method):
        raise _fail(helper, "no longer exists")
    parameters = inspect.signature(method).parameters
    missing = [keyword for keyword in keywords if keyword not in parameters]
    if missing:
        raise _fail(helper, f"no longer takes {', '.join(missing)}")


def check_private_helpers(model: Any | None = None) -> None:
    """Checks that every private helper the pipeline calls exists with the parameters it passes.

    Cheap (attribute and signature look-ups), so every model load runs it.

    Args:
        model: a loaded model (or its class) whose own, possibly overridden, generation helpers
            are checked; None checks transformers' `GenerationMixin`.

    Raises:
        IncompatibleTransformersError: names the helper and the transformers version.
        What a helper does (the cache's per-layer `keys`/`values`, `crop` with a negative count)
        is checked by tests/test_hf_compat.py on a real model, not here.
    """
    for module_name, attribute in _MODULE_ATTRIBUTES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            raise _fail(module_name, "cannot be imported") from None
        if not hasattr(module, attribute):
            raise _fail(f"{module_name}.{attribute}", "no longer exists")
    from transformers import DynamicCache, GenerationMixin

    owner = GenerationMixin if model is None else model
    owner_name = owner.__name__ if isinstance(owner, type) else type(owner).__name__
    for name, keywords in _MODEL_METHODS:
        _check_method(owner, owner_name, name, keywords)
    for name, keywords in _CACHE_METHODS:
        _check_method(DynamicCache, "DynamicCache", name, keywords)
    if model is not None and not isinstance(model, type) and not hasattr(model.config, "_attn_implementation"):
        raise _fail(f"{type(model.config).__name__}._attn_implementation", "no longer exists")
