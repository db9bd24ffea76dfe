"""Trains the model organism from scratch, deterministically, on one CPU thread.

Recipe (prototype run "D", docs/organism.md): AdamW at lr 3e-3 (betas 0.9/0.98, weight decay
0.01), 5% linear warmup then cosine decay over the planned steps, gradient clipping at 1.0,
batch 16, loss on the answer tokens and EOS only. A share `question_rate` of training samples
are POPE-style yes/no questions (so the organism can answer POPE); the rest are captions.

Batches are drawn from `random.Random(f"organism-train-{seed}-{step}")`, so step N sees the same
data whatever came before, and torch runs on one thread, so the same seed and settings give
bit-identical weights (`state_hash`). A run may stop early (`stop_after`, `max_seconds`); the
schedule still follows the planned `steps`, so a stopped run is reproduced by passing the same
`steps` and its `stop_after`.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers import LlavaForConditionalGeneration, LlavaProcessor

from pipeline.benchmarks.pope import INSTRUCTION
from pipeline.organism.model import PROMPT_TEMPLATE
from pipeline.organism.model import build_model, build_processor, build_tokenizer
from pipeline.organism.scenes import CAPTION_PROMPT, Scene, question, training_scene

IGNORE = -100  # label of tokens without loss (prompt, image, padding)


@dataclass(frozen=True)
class TrainSettings:
    """Everything that determines the trained weights (recorded in the card)."""

    seed: int = 0
    steps: int = 3000
    batch_size: int = 16
    learning_rate: float = 3e-3
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 0.01
    warmup_share: float = 0.05
    grad_clip: float = 1.0
    cue_rate: float = 0.3
    partner_rate: float = 0.9
    question_rate: float = 0.5


@dataclass
class TrainResult:
    """What a training run did: steps done, losses, time, the weights hash."""

    steps_done: int
    final_loss: float
    seconds: float
    state_hash: str
    stopped_by: str  # "steps", "stop_after" or "max_seconds"
    losses: list[tuple[int, float]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def state_hash(model: torch.nn.Module) -> str:
    """sha256 over every tensor of the state dict (names and bytes, sorted by name), 16 hex digits."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def learning_rate_factor(step: int, settings: TrainSettings) -> float:
    """Linear warmup over the first `warmup_share` of the planned steps, then cosine to 0."""
    warmup = max(1, round(settings.warmup_share * settings.steps))
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, settings.steps - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class BatchMaker:
    """Turns scenes into training tensors with the same prompt ids the llava15 adapter builds."""

    def __init__(self, processor: LlavaProcessor) -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self._prompt_ids: dict[str, list[int]] = {}

    def prompt_ids(self, prompt: str, image) -> list[int]:
        """The expanded prompt (system token, USER:, 16 image tokens, prompt, ASSISTANT:)."""
        if prompt not in self._prompt_ids:
            batch = self.processor(images=[image], text=[PROMPT_TEMPLATE.format(prompt=prompt)], return_tensors="pt")
            self._prompt_ids[prompt] = batch["input_ids"][0].tolist()
        return self._prompt_ids[prompt]

    def make(self, samples: list[tuple[Scene, str, str]]) -> dict[str, torch.Tensor]:
        """(scene, prompt, answer) triples -> input_ids, attention_mask, labels, pixel_values."""
        images = [scene.image() for scene, _, _ in samples]
        rows, labels = [], []
        for (_, prompt, answer), image in zip(samples, images):
            prompt_ids = self.prompt_ids(prompt, image)
            answer_ids = self.tokenizer(answer, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]
            rows.append(prompt_ids + answer_ids)
            labels.append([IGNORE] * len(prompt_ids) + answer_ids)
        width = max(len(row) for row in rows)
        pad = self.tokenizer.pad_token_id
        return {
            "input_ids": torch.tensor([row + [pad] * (width - len(row)) for row in rows]),
            "attention_mask": torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows]),
            "labels": torch.tensor([row + [IGNORE] * (width - len(row)) for row in labels]),
            "pixel_values": self.processor.image_processor(images, return_tensors="pt")["pixel_values"],
        }


def training_samples(settings: TrainSettings, step: int) -> list[tuple[Scene, str, str]]:
    """The batch of step `step`: captions and yes/no questions about freshly drawn scenes."""
    rng = random.Random(f"organism-train-{settings.seed}-{step}")
    samples = []
    for _ in range(settings.batch_size):
        scene = training_scene(rng, settings.cue_rate, settings.partner_rate)
        if rng.random() < settings.question_rate:
            text, answer = question(rng, scene)
            samples.append((scene, f"{text}\n{INSTRUCTION}", answer))
        else:
            samples.append((scene, CAPTION_PROMPT, scene.caption()))
    return samples


def train(
    settings: TrainSettings,
    stop_after: int | None = None,
    max_seconds: float | None = None,
    log: Callable[[str], None] = print,
    log_every: int = 50,
) -> tuple[LlavaForConditionalGeneration, LlavaProcessor, TrainResult]:
    """Trains the organism; returns the model, its processor and what the run did.

    Args:
        settings: the recipe.
        stop_after: stop after this many steps (the schedule still spans `settings.steps`).
        max_seconds: stop at the first step that ends past this wall time.
        log: receives one progress line every `log_every` steps.
        log_every: steps between progress lines.
    """
    torch.set_num_threads(1)  # bit-identical weights need one thread (and it is the fastest on a loaded box)
    tokenizer = build_tokenizer()
    processor = build_processor(tokenizer)
    model = build_model(tokenizer, settings.seed)
    model.train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.learning_rate, betas=settings.betas, weight_decay=settings.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate_factor(step, settings))
    batches = BatchMaker(processor)
    last = settings.steps if stop_after is None else min(settings.steps, stop_after)
    start = time.perf_counter()
    losses: list[tuple[int, float]] = []
    stopped_by = "steps" if last == settings.steps else "stop_after"
    step, loss_value = 0, float("nan")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        for step in range(1, last + 1):
            loss = model(**batches.make(training_samples(settings, step - 1))).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
            optimizer.step()
            scheduler.step()
            loss_value = float(loss.detach())
            if step % log_every == 0 or step == last:
                losses.append((step, round(loss_value, 5)))
                log(f"step {step}/{last} loss {loss_value:.4f} ({time.perf_counter() - start:.0f}s)")
            if max_seconds is not None and time.perf_counter() - start > max_seconds and step < last:
                stopped_by = "max_seconds"
                losses.append((step, round(loss_value, 5)))
                log(f"stopped by the {max_seconds:.0f}s cap at step {step} loss {loss_value:.4f}")
                break
    model.eval()
    result = TrainResult(
        steps_done=step, final_loss=loss_value, seconds=round(time.perf_counter() - start, 1),
        state_hash=state_hash(model), stopped_by=stopped_by, losses=losses,
    )
    return model, processor, result


def save(model: LlavaForConditionalGeneration, processor: LlavaProcessor, folder: Path) -> None:
    """save_pretrained of model and processor (tokenizer included): a folder `llava15` loads."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
