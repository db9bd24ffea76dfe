"""Checkpoint folders (tests/checkpoints.py) load through `model.checkpoint` as a user's would: a
subword tokenizer, the family's processor settings and chat template, `model.args` reaching the
model and the processor, greedy decoding equal to `generate`, object words split into several
pieces still mapped to their CHAIR object, and a full `halleval run` on the synthetic benchmark."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from eval.metrics.saliency_bins import object_tokens
from pipeline.api import Visual
from pipeline.config import ModelArgs
from pipeline.decoding import decode, greedy_select
from pipeline.inference import token_pieces
from pipeline.models import MODELS
from pipeline.models._common import actor_placement
from pipeline.models.tiny import tiny_bpe_tokenizer
from pipeline.schema import read_generations
from pipeline.model_inputs import build_inputs

from checkpoints import build_for_checkpoint, save_checkpoint
from test_models import PROMPTS, visuals_for

HALLEVAL = str(Path(sys.executable).parent / "halleval")
IMAGE_FAMILIES = [name for name in MODELS.names() if MODELS.get(name)().modality == "image"]
VIDEO_FAMILIES = [name for name in MODELS.names() if MODELS.get(name)().modality == "video"]
OBJECT_WORDS = ["giraffe", "toothbrush", "skateboard"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    return {name: save_checkpoint(name, root / name) for name in MODELS.names()}


@pytest.mark.parametrize("style", ["byte_level", "sentencepiece"])
def test_the_subword_tokenizer_splits_object_words_into_several_pieces(style):
    tokenizer = tiny_bpe_tokenizer(["<image>"], style=style)
    for word in OBJECT_WORDS:
        pieces = tokenizer.tokenize(f"a {word} .")
        assert len(pieces) >= 5, pieces  # "a", two or more pieces of the word, "."
        assert tokenizer.decode(tokenizer(f"a {word} .")["input_ids"], skip_special_tokens=True) == f"a {word} ."


@pytest.mark.parametrize("style", ["byte_level", "sentencepiece"])
def test_every_piece_of_a_split_object_word_maps_to_that_object(style):
    tokenizer = tiny_bpe_tokenizer([], style=style)
    caption = "a giraffe is next to a toothbrush ."
    ids = tokenizer(caption, add_special_tokens=False)["input_ids"]
    text, pieces, offsets = token_pieces(tokenizer, ids)
    assert text == caption
    marks, aligned = object_tokens(text, offsets, truth=["giraffe"], tagger="aptagger")
    assert aligned
    expected = {}
    for word, hallucinated in (("giraffe", False), ("toothbrush", True)):
        start = caption.index(word)
        covering = [i for i, offset in enumerate(offsets) if start <= offset < start + len(word)]
        assert len(covering) > 1, f"{word!r} should be several pieces: {pieces}"
        assert "".join(pieces[i] for i in covering).strip() == word
        expected.update(dict.fromkeys(covering, hallucinated))
    assert marks == expected


@pytest.mark.parametrize("name", IMAGE_FAMILIES)
def test_a_saved_checkpoint_loads_and_decodes_like_the_model_it_was_saved_from(name, folders):
    loaded = MODELS.get(name)().load(str(folders[name]), torch.float32, "cpu")
    original, _ = build_for_checkpoint(name)
    assert len(loaded.tokenizer) == original.config.get_text_config().vocab_size
    assert len(loaded.tokenizer.tokenize("a giraffe")) > 2, "the checkpoint's tokenizer is the subword one"

    inputs = build_inputs(loaded, PROMPTS, visuals_for("image"))
    with torch.no_grad():
        saved_logits = loaded.model(**inputs).logits
        original_logits = original.eval().requires_grad_(False)(**inputs).logits  # frozen as halleval loads it
    torch.testing.assert_close(saved_logits, original_logits)

    visual_ids = torch.tensor(sorted(loaded.adapter.visual_token_ids(loaded)))
    for row in inputs["input_ids"]:
        positions = torch.isin(row, visual_ids).nonzero().flatten()
        assert len(positions) > 0 and int(positions[-1] - positions[0]) + 1 == len(positions)

    ours = decode(loaded, inputs, 8, [torch.Generator().manual_seed(row) for row in range(2)], greedy_select)
    with torch.no_grad():
        reference = loaded.model.generate(**inputs, do_sample=False, max_new_tokens=8)
    eos = loaded.eos_token_ids
    for row, generation in enumerate(ours):
        expected = reference[row, inputs["input_ids"].shape[1]:].tolist()
        stop = next((i + 1 for i, token in enumerate(expected) if token in eos), len(expected))
        assert generation.token_ids == expected[:stop]


def test_qwen_prompts_render_with_the_real_chat_template(folders):
    loaded = MODELS.get("qwen2_vl")().load(str(folders["qwen2_vl"]), torch.float32, "cpu")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "describe ."}]}]
    rendered = loaded.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert rendered == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "<|vision_start|><|image_pad|><|vision_end|>describe .<|im_end|>\n<|im_start|>assistant\n"
    )


@pytest.mark.parametrize("name", VIDEO_FAMILIES)
def test_a_video_checkpoint_without_torchvision_is_one_line_naming_it(name, folders):
    with pytest.raises(ValueError) as raised:
        MODELS.get(name)().load(str(folders[name]), torch.float32, "cpu")
    message = str(raised.value)
    assert "\n" not in message and f"cannot load model {name!r}" in message
    assert "video processor needs torchvision" in message


def _image_tokens(loaded, image_id: int, size: tuple[int, int] = (64, 48)) -> int:
    visual = Visual([Image.new("RGB", size, "gray")], "image")
    inputs = build_inputs(loaded, PROMPTS[:1], [visual])
    return int((inputs["input_ids"] == image_id).sum())


def test_min_and_max_pixels_reach_the_qwen_processor(folders):
    adapter = MODELS.get("qwen2_vl")()
    small = adapter.load(str(folders["qwen2_vl"]), torch.float32, "cpu", ModelArgs(max_pixels=28 * 28 * 4))
    large = adapter.load(str(folders["qwen2_vl"]), torch.float32, "cpu", ModelArgs(min_pixels=112 * 112, max_pixels=112 * 112))
    image_id = small.model.config.image_token_id
    # The 64x48 test image: capped at 3136 px it becomes 56x56 (4x4 patches, 2x2 merged: 4 tokens);
    # raised to 12544 px Qwen's smart_resize scales it by sqrt(12544 / 3072) and rounds up to
    # multiples of 28: 112x140, 8x10 patches, 20 tokens.
    assert (_image_tokens(small, image_id), _image_tokens(large, image_id)) == (4, 20)


def test_max_patches_reaches_the_internvl_processor(folders):
    adapter = MODELS.get("internvl")()
    one = adapter.load(str(folders["internvl"]), torch.float32, "cpu", ModelArgs(max_patches=1))
    assert one.processor.image_processor.max_patches == 1
    image_id = one.model.config.image_token_id
    default = adapter.load(str(folders["internvl"]), torch.float32, "cpu")
    # A 2:1 image: two tiles plus a thumbnail by default (4 tokens each), one tile when capped at 1.
    assert (_image_tokens(one, image_id, (112, 56)), _image_tokens(default, image_id, (112, 56))) == (4, 12)


def test_attn_implementation_reaches_the_model(folders):
    loaded = MODELS.get("llava15")().load(str(folders["llava15"]), torch.float32, "cpu", ModelArgs(attn_implementation="eager"))
    assert loaded.model.config.get_text_config()._attn_implementation == "eager"


def test_device_map_auto_loads_through_accelerate_and_decodes(folders):
    # Without GPUs "auto" places everything on the CPU: this checks the argument path, not a split.
    loaded = MODELS.get("llava15")().load(str(folders["llava15"]), torch.float32, "cpu", ModelArgs(device_map="auto"))
    assert {p.device.type for p in loaded.model.parameters()} == {"cpu"} and loaded.device == "cpu"
    inputs = build_inputs(loaded, PROMPTS, visuals_for("image"))
    assert all(len(g.token_ids) > 0 for g in decode(loaded, inputs, 4, [torch.Generator()] * 2, greedy_select))


def test_an_actor_without_cuda_runs_on_cpu_whatever_it_asked_for():
    assert actor_placement(0, ModelArgs()) == ("cpu", ModelArgs())
    if not torch.cuda.is_available():
        assert actor_placement(4, ModelArgs()) == ("cpu", ModelArgs())


def test_a_bad_revision_of_a_local_folder_is_one_line(folders, tmp_path):
    with pytest.raises(ValueError, match=r"^cannot load model 'llava15' from '/[^\n]*$"):
        MODELS.get("llava15")().load(str(tmp_path / "absent"), torch.float32, "cpu", ModelArgs(revision="v9"))


def _run(tmp_path: Path, model: dict, method: str, benchmark_root: Path) -> Path:
    config = tmp_path / f"{model['name']}.yaml"
    config.write_text(yaml.safe_dump({
        "model": model, "method": {"name": method},
        "benchmark": {"name": "chair", "root": str(benchmark_root), "limit": 4},
        "generation": {"max_new_tokens": 10, "batch_size": 2},
        "output_dir": str(tmp_path / "runs"),
    }))
    result = subprocess.run([HALLEVAL, "run", str(config)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    return run_dir


@pytest.mark.slow
@pytest.mark.parametrize(("name", "method", "args"), [
    ("llava15", "sgrs+locore", {}),
    ("qwen2_vl", "greedy", {"min_pixels": 3136, "max_pixels": 3136, "attn_implementation": "sdpa"}),
])
def test_halleval_run_on_a_checkpoint_folder_end_to_end(name, method, args, folders, synth, tmp_path):
    run_dir = _run(tmp_path, {"name": name, "checkpoint": str(folders[name]), "args": args}, method, synth.coco_root)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["model_args"] == args
    rows = read_generations(run_dir).to_pylist()
    generated = [row for row in rows if row.get("output_text") is not None]
    assert len(generated) == 4 and not any(row["error"] for row in generated)
    tokenizer = MODELS.get(name)().load(str(folders[name]), torch.float32, "cpu").tokenizer
    for row in generated:
        assert row["output_text"] == tokenizer.decode(row["token_ids"], skip_special_tokens=True)
        assert len(row["tokens"]) == len(row["token_offsets"]) == len(row["token_ids"])
    if method == "sgrs+locore":
        assert all(row["saliency"] is not None and len(row["saliency"]) == len(row["token_ids"]) for row in generated)
    scores = json.loads((run_dir / "scores.json").read_text())
    assert "chair" in json.dumps(scores).lower()
