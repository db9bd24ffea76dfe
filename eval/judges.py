"""LLM judges for video QA and video text generation, with a reply cache and bounded retries.

A judge spec names a registered judge and its argument: `openai:MODEL[@BASE_URL]` (any
OpenAI-compatible chat endpoint; key from $OPENAI_API_KEY), `hf:PATH` (a local transformers
chat model, imported lazily), `replay:FILE` (recorded judgements, JSONL {id, pred, score}), and
`exact` (normalised string match, no model). Prompts are Video-ChatGPT's, verbatim
(eval/data/videochatgpt_prompts.json); replies are parsed as the reference does, with
`ast.literal_eval`.
"""

from __future__ import annotations

import ast
import json
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Protocol

from eval.api import ScoringError
from eval.io import read_records, require
from pipeline.registry import Registry

PROMPTS: dict[str, dict[str, str]] = json.loads(
    (Path(__file__).parent / "data" / "videochatgpt_prompts.json").read_text()
)
"""criterion → {system, user}; `qa` is evaluate_activitynet_qa.py, the rest the 5 benchmark criteria."""


class JudgeError(RuntimeError):
    """One failed judgement (transport error, HTTP error, unparseable reply); it may be retried."""


class Judge(Protocol):
    """A registered judge; `spec` is how it was named, stored with every score."""

    spec: str

    def judge(self, criterion: str, item: dict[str, Any]) -> dict[str, Any]:
        """Returns {"pred": ..., "score": ...} (pred only for `qa`) or raises JudgeError."""
        ...


JUDGES: Registry[Callable[[str, str], Judge]] = Registry("judge")


def parse_reply(text: str, criterion: str) -> dict[str, Any]:
    """The reference's `ast.literal_eval(reply)`, plus the checks its scoring relies on."""
    try:
        reply = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise JudgeError(f"reply is not a Python dict: {text[:80]!r}") from None
    if not isinstance(reply, dict) or "score" not in reply or (criterion == "qa" and "pred" not in reply):
        raise JudgeError(f"reply lacks {'pred/score' if criterion == 'qa' else 'score'}: {text[:80]!r}")
    try:
        int(reply["score"])  # the reference's int(score); "4.8" as a string fails there too
    except (TypeError, ValueError):
        raise JudgeError(f"score is not a number: {reply['score']!r}") from None
    if criterion == "qa" and not isinstance(reply["pred"], str):
        raise JudgeError(f"pred is not a string: {reply['pred']!r}")
    return {key: reply[key] for key in ("pred", "score") if key in reply}


def messages(criterion: str, item: dict[str, Any]) -> list[dict[str, str]]:
    """The reference's system and user messages for one item."""
    prompt = PROMPTS[criterion]
    return [{"role": "system", "content": prompt["system"]},
            {"role": "user", "content": prompt["user"].format(**item)}]


class _ChatJudge:
    """A judge that sends the reference prompt to a chat model and parses its reply."""

    def __init__(self, spec: str, complete: Callable[[list[dict[str, str]]], str]) -> None:
        self.spec = spec
        self._complete = complete

    def judge(self, criterion: str, item: dict[str, Any]) -> dict[str, Any]:
        return parse_reply(self._complete(messages(criterion, item)), criterion)


@JUDGES.register("openai")
def openai_judge(spec: str, argument: str, timeout_s: float = 60.0) -> Judge:
    """`openai:MODEL[@BASE_URL]`; BASE_URL defaults to $OPENAI_BASE_URL or api.openai.com/v1."""
    model, _, base = argument.partition("@")
    if not model:
        raise ScoringError(f"judge {spec!r}: name a model, e.g. openai:gpt-3.5-turbo")
    url = (base or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
    headers = {"Content-Type": "application/json"}
    if os.environ.get("OPENAI_API_KEY"):
        headers["Authorization"] = f"Bearer {os.environ['OPENAI_API_KEY']}"

    def complete(chat: list[dict[str, str]]) -> str:
        body = json.dumps({"model": model, "messages": chat}).encode()
        request = urllib.request.Request(f"{url}/chat/completions", body, headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                payload = json.loads(response.read())
            return payload["choices"][0]["message"]["content"]
        except urllib.error.HTTPError as error:
            raise JudgeError(f"HTTP {error.code} from {url}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            raise JudgeError(f"no reply from {url}: {error}") from None
        except (ValueError, KeyError, IndexError, TypeError):
            raise JudgeError(f"malformed chat completion from {url}") from None

    return _ChatJudge(spec, complete)


@JUDGES.register("hf")
def hf_judge(spec: str, argument: str) -> Judge:
    """`hf:PATH`: a local transformers chat model, greedy decoding (imported only here)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(argument)
    model = AutoModelForCausalLM.from_pretrained(argument)

    def complete(chat: list[dict[str, str]]) -> str:
        inputs = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt",
                                               return_dict=True)
        output = model.generate(**inputs, max_new_tokens=64, do_sample=False)
        return tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)

    return _ChatJudge(spec, complete)


class _ReplayJudge:
    def __init__(self, spec: str, path: str) -> None:
        self.spec = spec
        self._records: dict[tuple[str | None, str], dict[str, Any]] = {}
        for index, record in enumerate(read_records(path)):
            require(record, ("id", "score"), f"{path}: record {index + 1}")
            self._records[(record.get("criterion"), str(record["id"]))] = record

    def judge(self, criterion: str, item: dict[str, Any]) -> dict[str, Any]:
        record = self._records.get((criterion, str(item["id"]))) or self._records.get((None, str(item["id"])))
        if record is None:
            raise JudgeError(f"no recorded judgement for id {item['id']!r}")
        return parse_reply(repr({k: record[k] for k in ("pred", "score") if k in record}), criterion)


@JUDGES.register("replay")
def replay_judge(spec: str, argument: str) -> Judge:
    """`replay:FILE`: recorded judgements, JSONL {id, pred, score} (a judge cache file works too)."""
    return _ReplayJudge(spec, argument)


def _normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", str(text).lower()).split())


class _ExactJudge:
    spec = "exact"

    def judge(self, criterion: str, item: dict[str, Any]) -> dict[str, Any]:
        if criterion != "qa":
            raise ScoringError("the exact judge only scores video QA (criterion qa)")
        match = _normalise(item["pred"]) == _normalise(item["answer"])
        return {"pred": "yes" if match else "no", "score": 5 if match else 0}


@JUDGES.register("exact")
def exact_judge(spec: str, argument: str) -> Judge:
    """`exact`: yes/5 when the lower-cased, punctuation-free prediction equals the answer, else no/0."""
    return _ExactJudge()


def make_judge(spec: str) -> Judge:
    """Builds a judge from its spec; an unknown name fails with the close matches."""
    name, _, argument = spec.partition(":")
    return JUDGES.get(name)(spec, argument)


class JudgeCache:
    """Judged replies in a JSONL file, keyed by (judge spec, criterion, id): a re-run asks nothing twice.

    Each line is {judge, criterion, id, pred, score}, so the file also replays (`replay:FILE`).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[tuple[str, str, str], dict[str, Any]] = {}
        if path.is_file():
            for record in read_records(path):
                self._entries[(record["judge"], record["criterion"], str(record["id"]))] = record

    def get(self, judge: str, criterion: str, item_id: Any) -> dict[str, Any] | None:
        record = self._entries.get((judge, criterion, str(item_id)))
        return None if record is None else {k: record[k] for k in ("pred", "score") if k in record}

    def put(self, judge: str, criterion: str, item_id: Any, judgement: dict[str, Any]) -> None:
        record = {"judge": judge, "criterion": criterion, "id": item_id, **judgement}
        self._entries[(judge, criterion, str(item_id))] = record
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:  # one line per reply: a crash loses none
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def judge_all(
    judge: Judge, criterion: str, items: list[dict[str, Any]], cache: JudgeCache,
    retries: int = 3, backoff_s: float = 1.0,
) -> tuple[dict[Any, dict[str, Any]], dict[Any, str]]:
    """Judges every item, from the cache where possible.

    A failing item is retried `retries` times with doubling backoff, then left unjudged (never
    scored "no").

    Returns:
        (id → judgement, id → last error of each unjudged item)
    """
    judged, unjudged = {}, {}
    for item in items:
        cached = cache.get(judge.spec, criterion, item["id"])
        if cached is not None:
            judged[item["id"]] = cached
            continue
        for attempt in range(retries + 1):
            try:
                judgement = judge.judge(criterion, item)
            except JudgeError as error:
                unjudged[item["id"]] = str(error)
                if attempt < retries:
                    time.sleep(backoff_s * 2 ** attempt)
                continue
            unjudged.pop(item["id"], None)
            judged[item["id"]] = judgement
            cache.put(judge.spec, criterion, item["id"], judgement)
            break
    return judged, unjudged

