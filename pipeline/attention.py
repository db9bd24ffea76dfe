"""The halleval attention implementation: fused SDPA, plus LocoRE and saliency capture on demand.

It is registered with transformers' `AttentionInterface` (and an SDPA mask with
`AttentionMaskInterface`) under `ATTENTION_NAME` and installed on the language model only, so
every model family gets it without patching model files. While no `AttentionPlan` is active it
is exactly `sdpa_attention_forward`.

An active plan (a context variable, set by the decode loop around its forwards) asks for:
- LocoRE (paper Alg. 2) in layers [l0, l1] on single-query decode forwards: the post-softmax
  weight of each generated token at distance 1..w_s before the query is multiplied by
  gamma = 1 + beta. On the fused path this is `o + beta * sum_{j in window} p_j v_j` with
  `p_j = exp(q.k_j * scale - LSE)`. The row's LSE comes out of a fused kernel itself (`LSE_KERNELS`:
  on CPU `aten._scaled_dot_product_flash_attention_for_cpu`, the kernel SDPA dispatches to there,
  so the output is bit for bit SDPA's; on CUDA the memory-efficient kernel), and only the w_s
  window logits are computed: four ops per layer. Elsewhere, and when the attention inputs need
  grad (the kernels' LSE has none), the LSE costs one extra q.K over the keys.
- saliency capture in the target layers: those layers materialise the query's attention
  probabilities A (after LocoRE, so a LocoRE run is measured through the attention it runs) and
  add a zero leaf `delta` that requires grad, so `d loss / d delta` is the total derivative
  d loss / d A, downstream paths through later layers included.
- attention rows of one layer (OPERA): the last query row's probabilities, max over heads,
  recorded beside the unchanged SDPA output.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

ATTENTION_NAME = "halleval"


@dataclass(frozen=True)
class Locore:
    """LocoRE settings (paper Alg. 2).

    Attributes:
        layers: first and last decoder layer [l0, l1], inclusive.
        beta: gain strength; attention to recent outputs is multiplied by 1 + beta.
        window: w_s; generated tokens at distance d <= w_s from the query gain.
        renormalize: divide the gained row by its new sum (off in the paper's algorithm).
    """

    layers: tuple[int, int]
    beta: float
    window: int
    renormalize: bool = False

    def covers(self, layer: int | None) -> bool:
        return layer is not None and self.layers[0] <= layer <= self.layers[1]


@dataclass
class SaliencyCapture:
    """What one differentiable forward left for saliency: per target layer the attention
    probabilities A [B, H, q, T] (detached values) and the zero leaf whose gradient is dL/dA,
    plus the graph-carrying next-token logits [B, V].

    Where the model's output embedding is a plain linear map (logits = h W^T, checked once per
    decode), it also keeps h, the head's input at the last position (in the graph), and W: the
    gradient of -log p(c) with respect to h is then p W - W_c for every candidate c, one
    [B, V] x [V, H] product, where autograd's backward through the head would run one per
    candidate (`pipeline.saliency.candidate_saliency`).
    """

    layers: frozenset[int]
    probs: dict[int, torch.Tensor] = field(default_factory=dict)
    deltas: dict[int, torch.Tensor] = field(default_factory=dict)
    logits: torch.Tensor | None = None
    head_input: torch.Tensor | None = None
    head_weight: torch.Tensor | None = None  # set once the head is known to be linear
    head_checked: bool = False

    def clear(self) -> None:
        self.probs.clear()
        self.deltas.clear()
        self.logits = None
        self.head_input = None

    @contextmanager
    def recording_head_input(self, model: torch.nn.Module) -> Iterator[None]:
        """Keeps the output embedding's input during a forward; after the first, checks that
        the logits are exactly that linear map (no bias, scale or soft-capping)."""
        head = model.get_output_embeddings()

        def keep(module: torch.nn.Module, args: tuple) -> None:
            self.head_input = args[0][:, -1]

        handle = head.register_forward_pre_hook(keep)
        try:
            yield
        finally:
            handle.remove()
        if not self.head_checked and self.logits is not None:
            self.head_checked = True
            if isinstance(head, torch.nn.Linear) and head.bias is None and self.head_input is not None:
                with torch.no_grad():
                    linear = torch.nn.functional.linear(self.head_input, head.weight)
                    scale = float(self.logits.abs().max()) or 1.0
                    if torch.allclose(linear, self.logits, rtol=1e-2, atol=1e-2 * scale):
                        self.head_weight = head.weight


@dataclass
class AttentionRows:
    """Records, for one layer, the last query row of each forward's attention probabilities,
    max over heads ([B, T]), as OPERA reads them. The forward's output stays SDPA's."""

    layer: int
    last: torch.Tensor | None = None


@dataclass(frozen=True)
class AttentionPlan:
    """What the halleval attention does during the forwards it is active for.

    Attributes:
        output_start: cache column of the first generated token (the padded prompt length);
            LocoRE's window only ever covers generated tokens.
        locore: LocoRE settings, or None for unmodified attention.
        capture: where target layers record A and its gradient leaf, or None.
        rows: where one layer records its last attention row (max over heads), or None.
    """

    output_start: int
    locore: Locore | None = None
    capture: SaliencyCapture | None = None
    rows: AttentionRows | None = None


_PLAN: contextvars.ContextVar[AttentionPlan | None] = contextvars.ContextVar("halleval_attention_plan", default=None)


@contextmanager
def active(plan: AttentionPlan | None) -> Iterator[None]:
    """Makes `plan` the one the halleval attention follows inside the block."""
    token = _PLAN.set(plan)
    try:
        yield
    finally:
        _PLAN.reset(token)


def install(model: torch.nn.Module) -> None:
    """Switches the language model to the halleval attention; vision towers keep theirs.

    Also freezes the weights: halleval never trains, and frozen weights let a differentiable
    forward build a graph only downstream of the captured attention probabilities.
    """
    implementations = {
        name: getattr(model.config, name)._attn_implementation
        for name in model.config.sub_configs
        if getattr(model.config, name, None) is not None
    }
    implementations["text_config"] = ATTENTION_NAME
    model.set_attn_implementation(implementations)
    model.requires_grad_(False)


def _grouped(query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """q.K^T * 1 for grouped-query attention without repeating K: [B, H, q, T]."""
    batch, heads, q_len, dim = query.shape
    kv_heads = key.shape[1]
    grouped = query.reshape(batch, kv_heads, heads // kv_heads * q_len, dim)
    return (grouped @ key.transpose(-1, -2)).reshape(batch, heads, q_len, key.shape[2])


def _apply_grouped(weights: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """weights [B, H, q, T'] @ value [B, Hkv, T', D] per head group: [B, H, q, D]."""
    batch, heads, q_len, keys = weights.shape
    kv_heads = value.shape[1]
    out = weights.reshape(batch, kv_heads, heads // kv_heads * q_len, keys) @ value
    return out.reshape(batch, heads, q_len, value.shape[-1])


def _scores(module, query, key, attention_mask, scaling) -> torch.Tensor:
    """Masked attention logits [B, H, q, T], at least float32 as in the models' eager attention
    (float64 stays float64, so the tests can compare to 1e-10)."""
    scale = scaling if scaling is not None else module.head_dim**-0.5
    scores = _grouped(query, key).to(torch.promote_types(query.dtype, torch.float32)) * scale
    q_len, k_len = scores.shape[-2:]
    if attention_mask is None and q_len == 1:
        return scores  # a single query without padding sees every key
    if attention_mask is None:
        # SDPA's mask may be skipped for pure causal attention; rebuild it (bottom-right aligned).
        attention_mask = torch.ones(q_len, k_len, dtype=torch.bool, device=scores.device).tril(k_len - q_len)
    if attention_mask.dtype == torch.bool:
        return scores.masked_fill(~attention_mask, float("-inf"))
    return scores + attention_mask


def _locore_window(plan: AttentionPlan, query: torch.Tensor, key: torch.Tensor) -> slice | None:
    """Cache columns of the generated tokens at distance 1..w_s before a single decode query."""
    if query.shape[2] != 1:  # prefill: there are no generated tokens yet
        return None
    query_column = key.shape[2] - 1
    start = max(plan.output_start, query_column - plan.locore.window)
    return slice(start, query_column) if start < query_column else None


def _gain(probs: torch.Tensor, window: slice, locore: Locore) -> torch.Tensor:
    """Eq. (4) on materialised probabilities (capture path)."""
    gain = torch.ones(probs.shape[-1], dtype=probs.dtype, device=probs.device)
    gain[window] = 1 + locore.beta
    gained = probs * gain
    return gained / gained.sum(-1, keepdim=True) if locore.renormalize else gained


def _fused_locore(module, query, key, value, attention_mask, scaling, window: slice, locore: Locore, output):
    """Adds LocoRE's gain to an SDPA output [B, q, H, D] through the log-sum-exp of the row."""
    scores = _scores(module, query, key, attention_mask, scaling)
    window_probs = torch.exp(scores[..., window] - torch.logsumexp(scores, dim=-1, keepdim=True))
    extra = locore.beta * _apply_grouped(window_probs.to(value.dtype), value[:, :, window])
    gained = output + extra.transpose(1, 2)
    if locore.renormalize:
        row_sum = 1 + locore.beta * window_probs.sum(-1, keepdim=True)  # [B, H, q, 1]
        gained = gained / row_sum.transpose(1, 2).to(gained.dtype)
    return gained


def _additive_mask(mask: torch.Tensor, dtype: torch.dtype, align: int) -> torch.Tensor:
    """`mask` as an additive bias (boolean False becomes -inf, as SDPA does), stored with rows
    padded to a multiple of `align` elements and sliced back to the real number of keys."""
    keys = mask.shape[-1]
    if mask.dtype != torch.bool and align == 1:
        return mask
    padded = -(-keys // align) * align
    bias = torch.zeros(*mask.shape[:-1], padded, dtype=dtype, device=mask.device)
    if padded != keys:
        bias = bias[..., :keys]
    return bias.masked_fill_(~mask, float("-inf")) if mask.dtype == torch.bool else bias.copy_(mask)


def _cpu_kernel(query, key, value, mask, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The fused kernel SDPA dispatches to on CPU, called directly because it also returns the
    LSE (the `torch.` binding: a third of the call overhead of `torch.ops.aten.`)."""
    return torch._scaled_dot_product_flash_attention_for_cpu(query, key, value, 0.0, False, attn_mask=mask, scale=scale)


def _cuda_kernel(query, key, value, mask, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """CUTLASS memory-efficient attention, which takes any mask and returns the LSE (flash
    attention returns one too but takes no mask, and decode batches are left-padded)."""
    if mask is not None:
        mask = mask.expand(*query.shape[:3], mask.shape[-1])
    output, lse, _, _ = torch.ops.aten._scaled_dot_product_efficient_attention(query, key, value, mask, True, scale=scale)
    return output, lse[..., : query.shape[2]]  # the LSE's rows are padded to 32


@dataclass(frozen=True)
class LseKernel:
    """A fused attention kernel that returns the output and each row's LSE.

    Attributes:
        run: (query, key, value, additive mask or None, scale) -> (output [B, H, q, D], LSE [B, H, q]).
        dtypes: the dtypes LocoRE's fast path takes on this device.
        mask_align: the mask's rows must start at multiples of this many elements.
        packs_gqa: the kernel needs K/V heads equal to query heads (grouped heads are packed as queries).
    """

    run: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    dtypes: tuple[torch.dtype, ...]
    mask_align: int = 1
    packs_gqa: bool = False


LSE_KERNELS = {  # per device type; CPU's kernel gains nothing in half precision
    "cpu": LseKernel(_cpu_kernel, (torch.float32, torch.float64)),
    "cuda": LseKernel(_cuda_kernel, (torch.float16, torch.bfloat16, torch.float32), mask_align=16, packs_gqa=True),
}
_generic_only = contextvars.ContextVar("halleval_generic_locore", default=False)


@contextmanager
def generic_locore(on: bool = True) -> Iterator[None]:
    """LocoRE on the generic path only (SDPA, then q.K over every key for the LSE): what the
    fast path is checked and timed against. `on=False`: the usual choice (the fast path where it
    applies), so a caller timing both paths writes one `with`."""
    token = _generic_only.set(on)
    try:
        yield
    finally:
        _generic_only.reset(token)


def _lse_kernel(query, key, value, dropout: float, kwargs: dict) -> LseKernel | None:
    """The device's LSE kernel when LocoRE's fast path can take this call, else None."""
    kernel = LSE_KERNELS.get(query.device.type)
    if (
        kernel is None
        or query.dtype not in kernel.dtypes
        or _generic_only.get()
        or dropout
        or kwargs.get("position_bias") is not None
        or kwargs.get("softcap") is not None
        or key.shape[-1] != value.shape[-1]
        # The kernel's LSE carries no gradient; a differentiable forward takes the generic path.
        or (torch.is_grad_enabled() and (query.requires_grad or key.requires_grad or value.requires_grad))
    ):
        return None
    return kernel


def _fast_locore(kernel: LseKernel, query, key, value, attention_mask, scale: float, window: slice, locore: Locore) -> torch.Tensor:
    """LocoRE on one decode query with the LSE taken from the fused kernel: [B, 1, H, D].

    Mirrors `sdpa_attention_forward`'s choices for a single query (GQA without repeating K/V:
    SDPA's `enable_gqa` when there is no mask, else transformers' `pack_gqa`; boolean masks made
    additive as SDPA does), so on CPU the output before the gain is bit for bit SDPA's. Then
    only the w_s window logits are computed: p = exp(scale * q.K_w - LSE) in one baddbmm and an
    exp, and o + beta * p @ V_w in one more baddbmm, in at least float32.
    """
    batch, heads, _, dim = query.shape
    kv_heads = key.shape[1]
    groups = heads // kv_heads
    rows = batch * kv_heads
    mask = None if attention_mask is None else _additive_mask(attention_mask, query.dtype, kernel.mask_align)
    kernel_query = query
    if groups > 1 and (mask is not None or kernel.packs_gqa):  # pack_gqa: a group's heads become the queries of its K/V head
        kernel_query = query.reshape(batch, kv_heads, groups, dim)
        if mask is not None and mask.shape[1] != 1:
            mask = mask.reshape(batch, kv_heads, groups, mask.shape[-1])
    output, lse = kernel.run(kernel_query, key, value, mask, scale)
    keys = key.shape[2]
    window_keys = (key.view(rows, keys, dim) if key.is_contiguous() else key.reshape(rows, keys, dim))[:, window]
    window_values = (value.view(rows, keys, dim) if value.is_contiguous() else value.reshape(rows, keys, dim))[:, window]
    window_query = query.reshape(rows, groups, dim)
    output, lse = output.reshape(rows, groups, dim), lse.reshape(rows, groups, 1)
    exact = torch.promote_types(query.dtype, torch.float32)
    if query.dtype != exact:  # half precision (CUDA): the window logits and the gain in float32
        window_query, window_keys, window_values, output, lse = (
            t.to(exact) for t in (window_query, window_keys, window_values, output, lse)
        )
    # scale * q.K_w - LSE: [B*Hkv, groups, w]
    logits = torch.baddbmm(lse, window_query, window_keys.transpose(1, 2), beta=-1, alpha=scale)
    if mask is not None:
        logits = logits.view(batch, kv_heads, groups, -1).add_(mask[..., window]).view(rows, groups, -1)
    window_probs = logits.exp_()
    gained = torch.baddbmm(output, window_probs, window_values, alpha=locore.beta)
    if locore.renormalize:
        gained = gained / window_probs.sum(-1, keepdim=True).mul_(locore.beta).add_(1)
    return gained.to(query.dtype).view(batch, 1, heads, dim)  # [B, H, 1, D] and [B, 1, H, D] share a layout


def halleval_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """The registered attention function (transformers' signature; layout [B, H, T, D] in,
    [B, q, H, D] out)."""
    plan = _PLAN.get()
    layer = getattr(module, "layer_idx", None)
    if plan is not None and plan.rows is not None and layer == plan.rows.layer:
        scores = _scores(module, query[:, :, -1:], key, None if attention_mask is None else attention_mask[..., -1:, :], scaling)
        plan.rows.last = torch.softmax(scores, dim=-1)[:, :, 0].amax(dim=1)
    locore = plan.locore if plan is not None and plan.locore is not None and plan.locore.covers(layer) else None
    window = _locore_window(plan, query, key) if locore is not None else None
    capture = plan.capture if plan is not None else None
    if capture is not None and layer in capture.layers and torch.is_grad_enabled():
        probs = torch.softmax(_scores(module, query, key, attention_mask, scaling), dim=-1).to(query.dtype)
        if window is not None:
            probs = _gain(probs, window, locore)
        delta = torch.zeros_like(probs, requires_grad=True)
        capture.probs[layer] = probs.detach()
        capture.deltas[layer] = delta
        return _apply_grouped(probs + delta, value).transpose(1, 2).contiguous(), None
    kernel = _lse_kernel(query, key, value, dropout, kwargs) if window is not None else None
    if kernel is not None:
        scale = scaling if scaling is not None else module.head_dim**-0.5
        return _fast_locore(kernel, query, key, value, attention_mask, scale, window, locore), None
    output, _ = sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    if window is not None:
        output = _fused_locore(module, query, key, value, attention_mask, scaling, window, locore, output)
    return output, None


AttentionInterface.register(ATTENTION_NAME, halleval_attention)
AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)
