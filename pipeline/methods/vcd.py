"""VCD, visual contrastive decoding (Leng et al., CVPR 2024), as its code (`vcd_sample.py`).

A second stream runs the same prompt on a distorted image v': DDPM forward diffusion noise at
step t of VCD's 1000-step schedule (betas = sigmoid(linspace(-6, 6)) * (5e-3 - 1e-5) + 1e-5),
x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, applied to the processor's pixel tensor. Each step
samples from

    p_vcd = softmax([(1 + a) l(v) - a l(v')] / T)   over  V_head = {y : p(y | v) >= b * max p(. | v)}

(the adaptive plausibility cut, VCD's "version 2": l(v) >= log b + max l(v)), then top-p. With
a = 0 and b = 0 this is plain sampling. The noise of sample i comes from a generator seeded from
sample i's own seed, so it is reproducible and leaves the sampling draws untouched.
Record `plausible`: |V_head| at each step.
"""

from __future__ import annotations

import math

import torch

from pipeline.api import LoadedModel
from pipeline.config import MethodConfig
from pipeline.decoding import DecodeState, StepChoice, TokenSelector, placeholder_ids, row_slices, sample_step
from pipeline.methods import METHODS
from pipeline.methods._base import SelectorMethod

DIFFUSION_STEPS = 1000


def noise_schedule() -> torch.Tensor:
    """abar_t = prod_{s <= t} (1 - beta_s) for t = 0..999, VCD's schedule (float32, as its code)."""
    betas = torch.sigmoid(torch.linspace(-6, 6, DIFFUSION_STEPS)) * (0.5e-2 - 1e-5) + 1e-5
    return torch.cumprod(1 - betas, dim=0)


def diffusion_noise(pixels: torch.Tensor, noise_step: int, generator: torch.Generator) -> torch.Tensor:
    """x_t ~ q(x_t | x_0) at `noise_step`, with eps drawn from `generator`."""
    alpha_bar = noise_schedule()[noise_step]
    eps = torch.randn(pixels.shape, generator=generator, dtype=pixels.dtype, device=pixels.device)
    return (alpha_bar.sqrt() * pixels + (1 - alpha_bar).sqrt() * eps).to(pixels.dtype)


def noise_generator(generator: torch.Generator) -> torch.Generator:
    """A generator for a sample's noise, seeded from its own generator's seed without drawing
    from it (so the sampling draws stay those of plain sampling)."""
    seed = (generator.initial_seed() * 6364136223846793005 + 1442695040888963407) % 2**63
    return torch.Generator(device=generator.device).manual_seed(seed)


def distorted_inputs(
    loaded: LoadedModel, inputs: dict[str, torch.Tensor], params: MethodConfig, generators: list[torch.Generator]
) -> dict[str, dict[str, torch.Tensor]]:
    """The batch with every pixel tensor noised at `params.noise_step`, per sample."""
    distorted = dict(inputs)
    noise = [noise_generator(g) for g in generators]
    for key in (k for k in inputs if k.startswith("pixel_values")):
        slices = row_slices(inputs, key, placeholder_ids(loaded))
        parts = [diffusion_noise(inputs[key][part], params.noise_step, gen) for part, gen in zip(slices, noise)]
        distorted[key] = torch.cat(parts)
    return {"distorted": distorted}


def vcd_logits(logits: torch.Tensor, distorted: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """(1 + alpha) l(v) - alpha l(v') on V_head (p(v) >= beta * max p(v)), -inf elsewhere."""
    cutoff = (math.log(beta) if beta > 0 else float("-inf")) + logits.max(dim=-1, keepdim=True).values
    contrast = (1 + alpha) * logits - alpha * distorted
    return contrast.masked_fill(logits < cutoff, float("-inf"))


def make_vcd_select(params: MethodConfig) -> TokenSelector:
    def select(state: DecodeState) -> StepChoice:
        contrast = vcd_logits(state.logits, state.streams["distorted"].logits, params.cd_alpha, params.cd_beta)
        choice = sample_step(contrast, state.generators, params.temperature, params.top_p)
        choice.fields = {"plausible": torch.isfinite(contrast).sum(-1).tolist()}
        return choice

    return select


METHODS.register("vcd")(lambda: SelectorMethod(make_vcd_select, extra_streams=distorted_inputs))
