"""A model organism of hallucination: a tiny LLaVA trained here, with a planted co-occurrence bias.

- `scenes`: the synthetic world (12 COCO categories as coloured shapes on a 2x2 grid), captions,
  POPE-style questions and the planted bias (fork -> knife).
- `model`: the architecture (real `LlavaForConditionalGeneration`, 0.39M parameters).
- `train`: the deterministic training recipe and the weights hash.
- `heldout`: the held-out CHAIR (COCO format) and POPE sets: regular, trigger and pair scenes.
- `card`: the machine-readable card shipped next to the checkpoint.

The trained checkpoint ships in `pipeline/organism/checkpoint/` and loads through the `llava15`
adapter like any local checkpoint (`model.checkpoint: <folder>`). docs/organism.md has the figures.
"""

from pathlib import Path

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoint"
"""The shipped checkpoint folder (save_pretrained of model and processor, plus card.json)."""
