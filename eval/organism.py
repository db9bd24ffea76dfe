"""The planted-pair figures of a model-organism run (docs/organism.md).

A held-out organism set (`halleval data organism`) has `organism.json` beside its COCO
annotations: the planted pair (cue, partner) and each image's group (regular, trigger, pair).
Every organism object name is one word, so a caption names the partner when one of its
lower-cased words is the partner's name. From a CHAIR run's generations:

- `planted_rate`: share of trigger images (cue without partner) whose caption names the
  partner: the planted hallucination.
- `partner_recall`: share of pair images whose caption names the partner.
- `cue_recall`: share of trigger and pair images whose caption names the cue.

Rows with an error are counted (`n_errors`) and left out, as CHAIR leaves them out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eval.api import ScoringError
from pipeline.schema import read_generations

SIDECAR = "organism.json"  # written by pipeline.organism.heldout (its SIDECAR)


def read_sidecar(coco_root: str | Path) -> dict[str, Any]:
    """The planted pair and groups of a held-out organism set.

    Raises:
        ScoringError: the folder has no organism.json (one line naming it and the fix).
    """
    path = Path(coco_root) / SIDECAR
    if not path.is_file():
        raise ScoringError(f"{path} not found: not an organism held-out set — write one with "
                           "`halleval data organism --out DIR`")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ScoringError(f"{path}: not valid JSON ({error.msg}); rewrite it with `halleval data organism`") from None


def planted_rates(run_dir: str | Path, coco_root: str | Path) -> dict[str, Any]:
    """The planted-pair figures of a CHAIR run on a held-out organism set (see the module doc)."""
    sidecar = read_sidecar(coco_root)
    cue, partner, groups = sidecar["cue"], sidecar["partner"], sidecar["groups"]
    table = read_generations(run_dir, columns=["metadata", "output_text", "error"])
    said: dict[str, list[tuple[bool, bool]]] = {"regular": [], "trigger": [], "pair": []}
    n_errors = 0
    for row in table.to_pylist():
        if row["error"] is not None:
            n_errors += 1
            continue
        image_id = str(json.loads(row["metadata"] or "{}").get("image_id"))
        words = set((row["output_text"] or "").lower().split())
        said[groups[image_id]].append((cue in words, partner in words))

    def share(rows: list[tuple[bool, bool]], index: int) -> float | None:
        return sum(row[index] for row in rows) / len(rows) if rows else None

    return {
        "cue": cue, "partner": partner,
        "planted_rate": share(said["trigger"], 1),
        "partner_recall": share(said["pair"], 1),
        "cue_recall": share(said["trigger"] + said["pair"], 0),
        "partner_on_regular": share(said["regular"], 1),
        "n_trigger": len(said["trigger"]), "n_pair": len(said["pair"]), "n_regular": len(said["regular"]),
        "n_errors": n_errors,
    }
