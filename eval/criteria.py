"""Judge criteria: what a judge is asked about one item and how its reply is read.

A criterion is a prompt builder plus a reply parser, registered by name, so every LLM-judged
metric (video QA, the 5 video text-generation criteria, LLaVA-Bench's GPT review, MM-Vet's GPT
grader) shares one judging machinery (eval/judges.py: concurrency, rate limit, retries, cache).

- `qa`, `correctness`, `detail`, `context`, `temporal`, `consistency`: Video-ChatGPT's prompts,
  verbatim (eval/data/videochatgpt_prompts.json); replies read with `ast.literal_eval` as its
  scripts do; judgement {pred, score} (pred only for `qa`), score 0–5.
- `llava_bench_review`: LLaVA's `llava/eval/eval_gpt_review_bench.py` (haotian-liu/LLaVA
  @c121f04): its system message, its `[Context]/[Question]/[Assistant 1]/[Assistant 2]/[System]`
  content and the category's rule from `llava/eval/table/rule.json`
  (eval/data/llava_bench_rules.json, verbatim), temperature 0.2, max_tokens 1024; the reply's
  first line holds the two scores (its `parse_score`); judgement {content, tuple}.
- `mm_vet_grade`: MM-Vet's `mm-vet_evaluator.py` (yuweihao/MM-Vet @acde843): its few-shot
  prompt (eval/data/mm_vet_prompt.txt, verbatim), max_tokens 3, temperature 0; the reply's first
  word is the 0–1 score; a retry appends its "Predict the correctness of the answer (digit): "
  at temperature 0, then 0.5, 1.0, ... as its loop does; judgement {content, score}.

Where halleval departs from a reference on a bad reply it is deliberate, and the same for
every criterion: a reply that does not parse, or holds a non-finite or out-of-range score, is
retried and then left unjudged (reported, never averaged). LLaVA's parse_score would score it
[-1, -1] and average that in; MM-Vet's loop would score 0.0 after 5 tries and accept NaN.
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.registry import Registry

_DATA = Path(__file__).parent / "data"

Messages = list[dict[str, str]]


class JudgeError(RuntimeError):
    """One failed judgement (transport error, HTTP error, unusable reply); it may be retried."""


@dataclass(frozen=True)
class Criterion:
    """How one kind of item is put to a judge and how the reply is read.

    Attributes:
        name: registry name, stored with every cached judgement.
        build: item -> the chat messages of the first attempt (the cache key hashes these).
        extract: reply text -> judgement fields; raises JudgeError when the text is unusable.
        check: judgement fields -> the validated judgement (used on replies, recorded
            judgements and cache lines alike); raises JudgeError.
        fields: the keys of a judgement.
        request: extra chat-completion parameters (temperature, max_tokens) of the reference.
        retry: (item, attempt >= 1) -> (messages, request) of a retry, where the reference
            changes its prompt on a retry; None repeats the first attempt.
    """

    name: str
    build: Callable[[dict[str, Any]], Messages]
    extract: Callable[[str], dict[str, Any]]
    check: Callable[[dict[str, Any]], dict[str, Any]]
    fields: tuple[str, ...]
    request: Mapping[str, Any] = field(default_factory=dict)
    retry: Callable[[dict[str, Any], int], tuple[Messages, Mapping[str, Any]]] | None = None

    def parse(self, text: str) -> dict[str, Any]:
        """The judgement a reply text holds; raises JudgeError."""
        if not isinstance(text, str):
            raise JudgeError(f"reply is not text: {type(text).__name__}")
        return self.check(self.extract(text))

    def attempt(self, item: dict[str, Any], attempt: int) -> tuple[Messages, Mapping[str, Any]]:
        """Messages and request parameters of attempt number `attempt` (0 = the first)."""
        if attempt and self.retry is not None:
            return self.retry(item, attempt)
        return self.build(item), self.request


CRITERIA: Registry[Criterion] = Registry("criterion")


def register(criterion: Criterion) -> Criterion:
    """Registers a criterion under its name."""
    return CRITERIA.register(criterion.name)(criterion)


def finite_score(value: Any, low: float, high: float, what: str = "score") -> float:
    """`value` as a float in [low, high]; JudgeError for bools, text, NaN, inf and out-of-range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JudgeError(f"{what} is not a number: {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        raise JudgeError(f"{what} is out of range [{low:g}, {high:g}]: {str(value)[:20]}") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise JudgeError(f"{what} is out of range [{low:g}, {high:g}]: {number!r}")
    return value


# --- Video-ChatGPT (video QA and the 5 text-generation criteria) ---------------------------

VIDEO_PROMPTS: dict[str, dict[str, str]] = json.loads((_DATA / "videochatgpt_prompts.json").read_text())
"""criterion → {system, user}; `qa` is evaluate_activitynet_qa.py, the rest the 5 benchmark criteria."""


def _literal_dict(text: str) -> dict[str, Any]:
    try:
        reply = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise JudgeError(f"reply is not a Python dict: {text[:80]!r}") from None
    if not isinstance(reply, dict):
        raise JudgeError(f"reply is not a Python dict: {text[:80]!r}")
    return reply


def _video_check(with_pred: bool) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def check(reply: dict[str, Any]) -> dict[str, Any]:
        if "score" not in reply or (with_pred and "pred" not in reply):
            raise JudgeError(f"reply lacks {'pred/score' if with_pred else 'score'}: {str(reply)[:80]!r}")
        # The reference takes int(score): "3" passes, "4.8" (a string) fails, and so do NaN and
        # inf (ValueError / OverflowError there, a crash; a failed judgement here).
        score = reply["score"]
        try:
            whole = int(score)
        except (TypeError, ValueError, OverflowError):
            raise JudgeError(f"score is not a number: {str(score)[:20]!r}") from None
        if isinstance(score, bool) or not 0 <= whole <= 5:
            raise JudgeError(f"score is out of range [0, 5]: {str(score)[:20]!r}")
        if with_pred and not isinstance(reply["pred"], str):
            raise JudgeError(f"pred is not a string: {reply['pred']!r}")
        return {key: reply[key] for key in ("pred", "score") if key in reply}

    return check


def _video_builder(name: str) -> Callable[[dict[str, Any]], Messages]:
    def build(item: dict[str, Any]) -> Messages:
        prompt = VIDEO_PROMPTS[name]
        return [{"role": "system", "content": prompt["system"]},
                {"role": "user", "content": prompt["user"].format(**item)}]

    return build


for _name in VIDEO_PROMPTS:
    register(Criterion(
        name=_name, build=_video_builder(_name), extract=_literal_dict, check=_video_check(_name == "qa"),
        fields=("pred", "score") if _name == "qa" else ("score",),
    ))


# --- LLaVA-Bench (in-the-wild) GPT review ---------------------------------------------------

LLAVA_RULES: dict[str, dict[str, str]] = json.loads((_DATA / "llava_bench_rules.json").read_text())
"""`llava_bench_<category>` → {role, prompt}: the LLaVA-Bench entries of LLaVA's rule.json."""

LLAVA_SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."


def llava_review_content(item: dict[str, Any]) -> str:
    """The user message of eval_gpt_review_bench.py for one question.

    Item keys: `category` (conv, detail, complex), `context` (the image's caption, or a list of
    captions, joined by newlines as the reference does), `question`, `answer1` (the reference
    answer, GPT-4's) and `answer2` (the model's).
    """
    rule = LLAVA_RULES.get(f"llava_bench_{item['category']}")
    if rule is None:
        raise JudgeError(f"LLaVA-Bench category {item['category']!r} has no rule; "
                         f"expected one of {', '.join(k.removeprefix('llava_bench_') for k in LLAVA_RULES)}")
    caption = "\n".join(item["context"]) if isinstance(item["context"], list) else item["context"]
    role = rule["role"]
    return (f'[Context]\n{caption}\n\n'
            f'[Question]\n{item["question"]}\n\n'
            f'[{role} 1]\n{item["answer1"]}\n\n[End of {role} 1]\n\n'
            f'[{role} 2]\n{item["answer2"]}\n\n[End of {role} 2]\n\n'
            f'[System]\n{rule["prompt"]}\n\n')


def _llava_extract(text: str) -> dict[str, Any]:
    # parse_score: the first line, commas as spaces, exactly two space-separated numbers.
    pair = text.split("\n")[0].replace(",", " ").split(" ")
    if len(pair) != 2:
        raise JudgeError(f"the review's first line is not two scores: {text.split(chr(10))[0][:80]!r}")
    try:
        scores = [float(pair[0]), float(pair[1])]
    except ValueError:
        raise JudgeError(f"the review's first line is not two scores: {text.split(chr(10))[0][:80]!r}") from None
    return {"content": text, "tuple": scores}


def _llava_check(judgement: dict[str, Any]) -> dict[str, Any]:
    scores, content = judgement.get("tuple"), judgement.get("content")
    if not isinstance(content, str) or not isinstance(scores, list | tuple) or len(scores) != 2:
        raise JudgeError(f"a review needs content and a pair of scores: {str(judgement)[:80]!r}")
    return {"content": content, "tuple": [float(finite_score(s, 0, 10)) for s in scores]}


register(Criterion(
    name="llava_bench_review",
    build=lambda item: [{"role": "system", "content": LLAVA_SYSTEM},
                        {"role": "user", "content": llava_review_content(item)}],
    extract=_llava_extract, check=_llava_check, fields=("content", "tuple"),
    request={"temperature": 0.2, "max_tokens": 1024},
))


# --- MM-Vet GPT grader ----------------------------------------------------------------------

MM_VET_PROMPT = (_DATA / "mm_vet_prompt.txt").read_text()
MM_VET_RETRY_SUFFIX = "\nPredict the correctness of the answer (digit): "


def mm_vet_question(item: dict[str, Any]) -> str:
    """mm-vet_evaluator.py's grading query: the few-shot table plus this item's row.

    Item keys: `question`, `answer` (ground truth, with <AND>/<OR>) and `pred`.
    """
    answer = item["answer"].replace("<AND>", " <AND> ").replace("<OR>", " <OR> ")
    return MM_VET_PROMPT + "\n" + " | ".join([item["question"], answer, item["pred"], ""])


def _mm_vet_extract(text: str) -> dict[str, Any]:
    first = text.split(" ")[0].strip()
    try:
        score = float(first)
    except ValueError:
        raise JudgeError(f"grade is not a number: {text[:40]!r}") from None
    return {"content": first, "score": score}


def _mm_vet_check(judgement: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(judgement.get("content"), str):
        raise JudgeError(f"a grade needs its content: {str(judgement)[:80]!r}")
    return {"content": judgement["content"], "score": float(finite_score(judgement.get("score"), 0, 1))}


register(Criterion(
    name="mm_vet_grade",
    build=lambda item: [{"role": "user", "content": mm_vet_question(item)}],
    extract=_mm_vet_extract, check=_mm_vet_check, fields=("content", "score"),
    request={"max_tokens": 3, "temperature": 0.0},
    retry=lambda item, attempt: ([{"role": "user", "content": mm_vet_question(item) + MM_VET_RETRY_SUFFIX}],
                                 {"max_tokens": 3, "temperature": 0.5 * (attempt - 1)}),
))
