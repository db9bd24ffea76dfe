"""The `hf:` judge on a real saved model folder, and the criterion registry."""

from __future__ import annotations

import pytest

from eval.criteria import CRITERIA, JudgeError
from eval.judges import JudgeCache, judge_all, make_judge
from pipeline.registry import UnknownNameError

REPLY = "{'pred': 'yes', 'score': 4}"


@pytest.fixture(scope="module")
def tiny_judge_folder(tmp_path_factory):
    """A tiny LlamaForCausalLM + in-memory tokenizer, saved with save_pretrained.

    Its output layer is zeroed, so every logit ties and greedy decoding picks token 0; the
    vocabulary makes token 0 the whole reply, and the generation config makes it the stop token.
    So the judge's real path (AutoTokenizer/AutoModelForCausalLM.from_pretrained, chat template,
    generate, decode, parse) yields a reply that parses.
    """
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<unk>", "<s>", "system", "user", "assistant", ":"] + [f"w{i}" for i in range(40)]
    vocab = {REPLY: 0, **{word: index + 1 for index, word in enumerate(words)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>")
    tokenizer.chat_template = ("{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} {% endfor %}"
                               "{% if add_generation_prompt %}assistant : {% endif %}")
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         bos_token_id=1, eos_token_id=0, pad_token_id=0)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.lm_head.weight.zero_()
    model.generation_config.eos_token_id = 0
    model.generation_config.pad_token_id = 0
    folder = tmp_path_factory.mktemp("judge-model")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_hf_judge_loads_a_saved_model_and_judges(tiny_judge_folder, tmp_path):
    judge = make_judge(f"hf:{tiny_judge_folder}")
    items = [{"id": i, "question": f"w{i} w2", "answer": "w3", "pred": "w4"} for i in range(3)]
    cache = tmp_path / "cache.jsonl"
    judged, unjudged = judge_all(judge, "qa", items, JudgeCache(cache))
    assert unjudged == {}
    assert judged == {i: {"pred": "yes", "score": 4} for i in range(3)}
    assert len(cache.read_text().splitlines()) == 3
    assert judge.max_in_flight == 1  # one generation at a time on the one model


def test_hf_judge_names_a_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="not a model folder"):
        make_judge(f"hf:{tmp_path / 'nothing'}")


def test_every_judged_metric_shares_one_registry():
    assert {"qa", "correctness", "detail", "context", "temporal", "consistency",
            "llava_bench_review", "mm_vet_grade"} <= set(CRITERIA._entries)
    with pytest.raises(UnknownNameError, match="did you mean 'mm_vet_grade'"):
        CRITERIA.get("mm_vet_grader")


@pytest.mark.parametrize(("name", "reply", "expected"), [
    ("qa", "{'pred': 'no', 'score': '3'}", {"pred": "no", "score": "3"}),  # int("3") works in the reference
    ("correctness", "{'score': 4.8}", {"score": 4.8}),
    ("llava_bench_review", "8 6\nAssistant 1 is better.", {"content": "8 6\nAssistant 1 is better.", "tuple": [8.0, 6.0]}),
    ("llava_bench_review", "7,5\n", {"content": "7,5\n", "tuple": [7.0, 5.0]}),  # commas are spaces
    ("mm_vet_grade", "0.4", {"content": "0.4", "score": 0.4}),
    ("mm_vet_grade", "1.0 (totally right)", {"content": "1.0", "score": 1.0}),
])
def test_replies_parse_as_the_references_do(name, reply, expected):
    assert CRITERIA.get(name).parse(reply) == expected


@pytest.mark.parametrize(("name", "reply"), [
    ("qa", "{'pred': 'yes', 'score': 1e999}"), ("qa", "{'pred': 'yes', 'score': float('nan')}"),
    ("qa", "{'pred': 'yes', 'score': 9}"), ("qa", "{'pred': 'yes', 'score': True}"),
    ("llava_bench_review", "8 out of 10\n"), ("llava_bench_review", "inf 3\n"), ("llava_bench_review", "8 11"),
    ("mm_vet_grade", "nan"), ("mm_vet_grade", "1.5"), ("mm_vet_grade", "Correct"),
])
def test_unusable_replies_fail_as_judge_errors(name, reply):
    with pytest.raises(JudgeError):
        CRITERIA.get(name).parse(reply)


def test_mm_vet_retry_changes_prompt_and_temperature_as_its_loop_does():
    criterion = CRITERIA.get("mm_vet_grade")
    item = {"question": "What is x?", "answer": "-1<AND>-5", "pred": "x = 3"}
    first, request = criterion.attempt(item, 0)
    assert first[0]["content"].endswith("\nWhat is x? | -1 <AND> -5 | x = 3 | ") and request["temperature"] == 0.0
    retries = [criterion.attempt(item, n) for n in (1, 2, 3)]
    assert all(chat[0]["content"].endswith("| \nPredict the correctness of the answer (digit): ")
               for chat, _ in retries)
    assert [request["temperature"] for _, request in retries] == [0.0, 0.5, 1.0]
