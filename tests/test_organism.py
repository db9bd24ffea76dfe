"""The model organism: deterministic training, the shipped checkpoint through the llava15 adapter,
its card's figures, golden greedy captions, POPE far above chance, the held-out set's formats."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image

from eval.metrics.chair import score_captions
from eval.metrics.pope import score_answers
from pipeline.benchmarks import BENCHMARKS
from pipeline.benchmarks.pope import INSTRUCTION
from pipeline.config import BenchmarkConfig, MethodConfig
from pipeline.methods import METHODS
from pipeline.models import MODELS
from pipeline.organism import CHECKPOINT_DIR
from pipeline.manifest import file_sha256
from pipeline.organism.card import WEIGHTS_FILE, read_card
from pipeline.organism.heldout import write_heldout
from pipeline.organism.model import CONVERSATION
from pipeline.organism.scenes import CAPTION_PROMPT, CUE, PARTNER
from pipeline.organism.train import TrainSettings, state_hash, train
from pipeline.model_inputs import build_inputs

GOLDEN = Path(__file__).parent / "fixtures" / "organism" / "golden_captions.json"
CARD = read_card(CHECKPOINT_DIR)


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    return write_heldout(tmp_path_factory.mktemp("organism"))


@pytest.fixture(scope="module")
def organism():
    loaded = MODELS.get("llava15")().load(str(CHECKPOINT_DIR), torch.float32, "cpu")
    return replace(loaded, conversation=CONVERSATION)  # as a run with configs/organism.yaml does


def greedy(loaded, prompts: list[str], images: list[Image.Image], max_new_tokens: int = 24) -> list[str]:
    """Greedy answers through the project's decode loop (METHODS 'greedy'), batches of 16."""
    from pipeline.api import Visual

    method, params = METHODS.get("greedy")(), MethodConfig(name="greedy")
    method.prepare(loaded, params)
    texts = []
    for start in range(0, len(prompts), 16):
        visuals = [Visual(modality="image", images=(image,)) for image in images[start:start + 16]]
        inputs = build_inputs(loaded, prompts[start:start + 16], visuals)
        generators = [torch.Generator().manual_seed(0) for _ in visuals]
        for generation in method.generate(loaded, inputs, params, max_new_tokens, generators):
            texts.append(loaded.tokenizer.decode(generation.token_ids, skip_special_tokens=True).strip())
    return texts


def heldout_images(heldout) -> dict[int, Image.Image]:
    folder = heldout.coco_root / "val2014"
    return {int(path.stem.rsplit("_", 1)[1]): Image.open(path).convert("RGB") for path in sorted(folder.glob("*.jpg"))}


def test_training_is_deterministic_and_seeded():
    settings = TrainSettings(steps=100, batch_size=4)
    first = train(settings, stop_after=3, log=lambda _: None)[2]
    second = train(settings, stop_after=3, log=lambda _: None)[2]
    other = train(TrainSettings(steps=100, batch_size=4, seed=1), stop_after=3, log=lambda _: None)[2]
    assert first.state_hash == second.state_hash
    assert first.final_loss == second.final_loss
    assert other.state_hash != first.state_hash
    assert first.steps_done == 3 and first.stopped_by == "stop_after"


def test_shipped_checkpoint_loads_through_the_llava15_adapter(organism):
    assert CARD["weights"]["sha256"] == file_sha256(CHECKPOINT_DIR / WEIGHTS_FILE)
    assert state_hash(organism.model) == CARD["training"]["state_hash"]
    assert organism.tokenizer.padding_side == "left"
    text = organism.model.config.text_config
    assert text.num_hidden_layers == CARD["architecture"]["text"]["layers"] == 8
    assert sum(p.numel() for p in {id(p): p for p in organism.model.parameters()}.values()) == CARD["architecture"]["parameters"]
    # The whole system prompt is one token, and the image expands to 16 tokens.
    inputs = build_inputs(organism, [CAPTION_PROMPT], [_visual(Image.new("RGB", (32, 32)))])
    ids = inputs["input_ids"][0].tolist()
    assert ids.count(organism.model.config.image_token_id) == 16 and len(ids) == 25


def _visual(image):
    from pipeline.api import Visual

    return Visual(modality="image", images=(image,))


def test_heldout_set_is_in_the_real_formats(heldout, tmp_path):
    sidecar = json.loads((heldout.coco_root / "organism.json").read_text())
    groups = list(sidecar["groups"].values())
    assert (groups.count("regular"), groups.count("trigger"), groups.count("pair")) == (60, 60, 30)
    instances = json.loads((heldout.coco_root / "annotations" / "instances_val2014.json").read_text())
    names = {c["id"]: c["name"] for c in instances["categories"]}
    objects: dict[str, set[str]] = {}
    for annotation in instances["annotations"]:
        objects.setdefault(str(annotation["image_id"]), set()).add(names[annotation["category_id"]])
    for image_id, group in sidecar["groups"].items():
        assert (CUE in objects[image_id], PARTNER in objects[image_id]) == {
            "regular": (False, False), "trigger": (True, False), "pair": (True, True)}[group]
    chair = list(BENCHMARKS.get("chair")().samples(BenchmarkConfig(name="chair", root=str(heldout.coco_root)), 0))
    pope = list(BENCHMARKS.get("pope")().samples(
        BenchmarkConfig(name="pope", root=str(heldout.pope_root), subset="adversarial"), 0))
    assert len(chair) == 150 and all(s.error is None for s in chair)
    assert len(pope) == 300 and all(s.error is None for s in pope)
    # The adversarial "no" question of every trigger image asks about the partner.
    questions = [json.loads(line) for line in (heldout.pope_root / "coco_pope_adversarial.json").open()]
    trigger = {int(i) for i, g in sidecar["groups"].items() if g == "trigger"}
    partner_questions = [q for q in questions if q["image_id"] in trigger and q["label"] == "no"]
    assert len(partner_questions) == 60 and all(PARTNER in q["text"] for q in partner_questions)
    again = write_heldout(tmp_path)
    for path in sorted(heldout.coco_root.rglob("*.jp*g"))[:10]:
        assert (again.coco_root / path.relative_to(heldout.coco_root)).read_bytes() == path.read_bytes()


def test_golden_greedy_captions(organism, heldout):
    golden = json.loads(GOLDEN.read_text())
    images = heldout_images(heldout)
    ids = [int(i) for i in golden]
    assert greedy(organism, [CAPTION_PROMPT] * len(ids), [images[i] for i in ids]) == list(golden.values())


def test_greedy_captions_meet_the_card(organism, heldout):
    figures = CARD["figures"]["greedy"]
    images = heldout_images(heldout)
    ids = sorted(images)
    captions = greedy(organism, [CAPTION_PROMPT] * len(ids), [images[i] for i in ids])
    scores = score_captions(zip(ids, captions), heldout.coco_root)
    for key in ("chair_s", "chair_i", "recall"):
        assert scores[key] == pytest.approx(figures[key], abs=0.02), key
    groups = json.loads((heldout.coco_root / "organism.json").read_text())["groups"]
    trigger = [c for i, c in zip(ids, captions) if groups[str(i)] == "trigger"]
    planted = sum(PARTNER in c.split() for c in trigger) / len(trigger)
    assert planted == pytest.approx(figures["planted_rate"], abs=0.02)
    assert planted > 0  # the planted hallucination is there (4 of 60 trigger captions when shipped)
    regular = [c for i, c in zip(ids, captions) if groups[str(i)] == "regular"]
    assert not any(PARTNER in c.split() for c in regular)  # and never without its cue


def test_pope_is_far_above_chance(organism, heldout):
    questions = [json.loads(line) for line in (heldout.pope_root / "coco_pope_adversarial.json").open()]
    images = heldout_images(heldout)
    answers = greedy(organism, [f"{q['text']}\n{INSTRUCTION}" for q in questions],
                     [images[q["image_id"]] for q in questions], max_new_tokens=3)
    scores = score_answers({q["question_id"]: q["label"] for q in questions},
                           [(q["question_id"], a) for q, a in zip(questions, answers)])
    assert scores["accuracy"] >= 0.7 and scores["f1"] >= 0.7  # chance is 0.5 (half the labels are yes)
    assert scores["accuracy"] == pytest.approx(CARD["figures"]["greedy"]["pope_accuracy"], abs=0.02)
    # The planted bias in POPE form: "Is there a knife?" on trigger images gets "yes" far more
    # often than the other "no" questions do.
    groups = json.loads((heldout.coco_root / "organism.json").read_text())["groups"]
    probe = [a for q, a in zip(questions, answers) if groups[str(q["image_id"])] == "trigger" and q["label"] == "no"]
    others = [a for q, a in zip(questions, answers) if groups[str(q["image_id"])] == "regular" and q["label"] == "no"]
    probe_yes = sum(a.startswith("yes") for a in probe) / len(probe)
    others_yes = sum(a.startswith("yes") for a in others) / len(others)
    assert probe_yes >= 0.2 and probe_yes > others_yes + 0.1


def test_the_demo_runs_table1s_methods_with_the_grids_settings(tmp_path):
    from jobs.organism import DEMO_METHODS, organism_configs, table1_methods
    from pipeline.organism.model import LOCORE_LAYERS, SALIENCY_LAYERS

    grid = table1_methods()
    assert set(grid) <= set(DEMO_METHODS)  # the organism runs the whole Table 1 method axis
    for name in DEMO_METHODS:
        chair, pope = organism_configs(name, tmp_path / "coco", tmp_path / "pope", tmp_path / "runs", CHECKPOINT_DIR, [])
        method = chair.method.model_dump()
        assert pope.method == chair.method
        for key, value in grid.get(name, {}).items():
            assert method[key] == (tuple(value) if isinstance(value, list) else value), (name, key)
        # The organism's layers go to exactly the methods that take them.
        for key, layers in (("target_layers", SALIENCY_LAYERS), ("locore_layers", LOCORE_LAYERS)):
            if key in method:
                assert tuple(method[key]) == tuple(layers), (name, key)
