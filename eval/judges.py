"""LLM judges: many requests in flight, a rate limit, Retry-After, a total deadline per request,
bounded retries, and a reply cache keyed on what was judged.

A judge spec names a registered judge and its argument: `openai:MODEL[@BASE_URL]` (any
OpenAI-compatible chat endpoint, over httpx; key from $OPENAI_API_KEY), `hf:PATH` (a local
transformers causal LM with a chat template, imported lazily), `replay:FILE` (recorded
judgements) and `exact` (normalised string match, video QA only). What is asked and how the
reply is read is a criterion (eval/criteria.py), so every judged metric shares this machinery.

`judge_all` runs up to `JudgeSettings.max_in_flight` judgements at once on one event loop;
its results do not depend on the order replies arrive in (they are returned in item order and
each item's judgement depends only on that item). A reply that is unusable in any way (HTTP
error, `content: null`, a non-dict or garbled reply, a non-finite or out-of-range score, no
complete reply within the deadline) is retried with doubling backoff, then left unjudged: it is
reported, never scored. HTTP 429/503 waits for Retry-After (every request waits: the limit is
the endpoint's) and does not use up the retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import json
import os
import re
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from eval.api import ScoringError
from eval.criteria import CRITERIA, Criterion, JudgeError, Messages
from pipeline.registry import Registry

__all__ = ["JudgeError", "RateLimited", "Judge", "JUDGES", "JudgeSettings", "JudgeCache", "judge_all",
           "make_judge", "messages", "parse_reply", "require_llm_judge"]


class RateLimited(JudgeError):
    """HTTP 429 (or 503): the endpoint asks every client to wait `retry_after_s` (None: unsaid)."""

    def __init__(self, message: str, retry_after_s: float | None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class JudgeSettings(BaseModel):
    """How hard `judge_all` may drive a judge."""

    model_config = ConfigDict(extra="forbid")

    max_in_flight: int = Field(16, ge=1, description="Judgements running at once (a judge may allow fewer).")
    requests_per_s: float | None = Field(
        None, gt=0, description="Most requests started per second; None: no limit beyond Retry-After.")
    deadline_s: float = Field(60.0, gt=0, description="Total time one attempt may take, reply body included.")
    retries: int = Field(3, ge=0, description="Retries of an item whose judgement failed, then it is unjudged.")
    backoff_s: float = Field(1.0, ge=0, description="Wait before the first retry; it doubles per retry.")
    rate_limit_waits: int = Field(
        10, ge=0, description="Retry-After waits an item may take (they do not use up `retries`).")
    max_retry_after_s: float = Field(300.0, gt=0, description="Longest Retry-After honoured; longer waits are cut to it.")


class Judge(Protocol):
    """A registered judge; `spec` is how it was named, stored with every score."""

    spec: str
    max_in_flight: int | None  # the judge's own limit (a local model: 1); None: no limit

    def session(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Holds the judge's connections (if any) open for one `judge_all`."""
        ...

    async def judge(self, criterion: Criterion, item: dict[str, Any], chat: Messages,
                    request: Mapping[str, Any]) -> dict[str, Any]:
        """The checked judgement of one item, or raises JudgeError (RateLimited for a 429)."""
        ...


JUDGES: Registry[Callable[[str, str], Judge]] = Registry("judge")


@contextlib.asynccontextmanager
async def _no_session() -> AsyncIterator[None]:
    yield


def parse_reply(text: str, criterion: str) -> dict[str, Any]:
    """The judgement a reply holds under a registered criterion; raises JudgeError."""
    return CRITERIA.get(criterion).parse(text)


def messages(criterion: str, item: dict[str, Any]) -> Messages:
    """The reference's chat messages for one item under a registered criterion."""
    return CRITERIA.get(criterion).build(item)


# --- OpenAI-compatible endpoints --------------------------------------------------------------

_MAX_REPLY_BYTES = 4 * 1024 * 1024  # a chat completion is kilobytes; more is a broken endpoint


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: a number of seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


class OpenAIJudge:
    """POSTs the criterion's messages to `<base>/chat/completions` and parses the reply text."""

    max_in_flight = None

    def __init__(self, spec: str, model: str, base_url: str, api_key: str | None) -> None:
        self.spec = spec
        self.model = model
        self.url = f"{base_url.rstrip('/')}/chat/completions"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client: Any = None

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[None]:
        import httpx

        # No pool limit of httpx's own: judge_all bounds the requests in flight.
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
        async with httpx.AsyncClient(headers=self._headers, limits=limits, timeout=None) as client:
            self._client = client
            try:
                yield
            finally:
                self._client = None

    async def judge(self, criterion: Criterion, item: dict[str, Any], chat: Messages,
                    request: Mapping[str, Any]) -> dict[str, Any]:
        import httpx

        body = {"model": self.model, "messages": chat, **request}
        try:
            async with self._client.stream("POST", self.url, json=body) as response:
                if response.status_code in (429, 503):
                    wait = retry_after_seconds(response.headers.get("retry-after"))
                    raise RateLimited(f"HTTP {response.status_code} from {self.url}", wait)
                if response.status_code >= 400:
                    raise JudgeError(f"HTTP {response.status_code} from {self.url}")
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > _MAX_REPLY_BYTES:
                        raise JudgeError(f"reply from {self.url} exceeds {_MAX_REPLY_BYTES} bytes")
        except httpx.HTTPError as error:
            raise JudgeError(f"no reply from {self.url}: {error.__class__.__name__}: {error}") from None
        return criterion.parse(_completion_text(bytes(data), self.url))


def _completion_text(data: bytes, url: str) -> str:
    try:
        payload = json.loads(data)
    except (ValueError, RecursionError):
        raise JudgeError(f"malformed chat completion from {url}: not JSON") from None
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise JudgeError(f"malformed chat completion from {url}: no choices[0].message.content") from None
    if not isinstance(content, str):
        raise JudgeError(f"chat completion from {url} has no text (content: {json.dumps(content)[:40]})")
    return content


@JUDGES.register("openai")
def openai_judge(spec: str, argument: str) -> Judge:
    """`openai:MODEL[@BASE_URL]`; BASE_URL defaults to $OPENAI_BASE_URL or api.openai.com/v1."""
    model, _, base = argument.partition("@")
    if not model:
        raise ScoringError(f"judge {spec!r}: name a model, e.g. openai:gpt-3.5-turbo")
    base = base or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
    return OpenAIJudge(spec, model, base, os.environ.get("OPENAI_API_KEY"))


# --- a local transformers model ---------------------------------------------------------------

class HfJudge:
    """A local causal LM with a chat template, greedy decoding, one generation at a time."""

    max_in_flight = 1

    def __init__(self, spec: str, path: str) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not Path(path).is_dir():
            raise ScoringError(f"judge {spec!r}: {path} is not a model folder (save_pretrained output)")
        self.spec = spec
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path)
        self.model.eval()
        self._lock = threading.Lock()  # an attempt cut by the deadline may still be generating

    def session(self) -> contextlib.AbstractAsyncContextManager[None]:
        return _no_session()

    def complete(self, chat: Messages, max_new_tokens: int) -> str:
        """Greedy reply of the model to `chat` (blocking)."""
        import torch

        with self._lock, torch.inference_mode():
            inputs = self.tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt",
                                                        return_dict=True)
            output = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        return self.tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)

    async def judge(self, criterion: Criterion, item: dict[str, Any], chat: Messages,
                    request: Mapping[str, Any]) -> dict[str, Any]:
        try:
            text = await asyncio.to_thread(self.complete, chat, int(request.get("max_tokens", 64)))
        except Exception as error:  # noqa: BLE001 - a failed generation is a failed judgement
            raise JudgeError(f"{self.spec}: generation failed: {error.__class__.__name__}: {error}") from None
        return criterion.parse(text)


@JUDGES.register("hf")
def hf_judge(spec: str, argument: str) -> Judge:
    """`hf:PATH`: a local transformers causal LM folder with a chat template (imported only here)."""
    return HfJudge(spec, argument)


# --- replayed judgements ----------------------------------------------------------------------

def _replay_records(path: str) -> list[dict[str, Any]]:
    """Records of a replay file: JSONL/JSON list (a judge cache, or LLaVA's review file with
    question_id/content), or MM-Vet's grade file ({id: {"content": [...], "score": [...]}})."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{path}: no such file (the replay judge's recorded judgements)")
    text = file.read_text(encoding="utf-8", errors="replace")
    if text.lstrip().startswith("{"):
        with contextlib.suppress(ValueError):
            grades = json.loads(text)
            if isinstance(grades, dict) and all(isinstance(v, dict) and "content" in v for v in grades.values()):
                return [{"id": key, "reply": grade["content"][0] if isinstance(grade["content"], list)
                         else grade["content"]} for key, grade in grades.items()]
    records, skipped = read_tolerant_jsonl(file)
    _warn_skipped(file, skipped)
    return records


class ReplayJudge:
    """Judgements recorded earlier: each record is {question_id | id, [criterion], reply | content
    (the judge's raw reply text) or the criterion's judgement fields}."""

    max_in_flight = None

    def __init__(self, spec: str, path: str) -> None:
        self.spec = spec
        self._records: dict[tuple[str | None, str], dict[str, Any]] = {}
        for record in _replay_records(path):
            # LLaVA's review files number their lines in `id`; the item is `question_id`.
            item_id = record.get("question_id", record.get("id"))
            if item_id is not None:
                self._records[(record.get("criterion"), str(item_id))] = record

    def session(self) -> contextlib.AbstractAsyncContextManager[None]:
        return _no_session()

    async def judge(self, criterion: Criterion, item: dict[str, Any], chat: Messages,
                    request: Mapping[str, Any]) -> dict[str, Any]:
        key = str(item["id"])
        record = self._records.get((criterion.name, key)) or self._records.get((None, key))
        if record is None:
            raise JudgeError(f"no recorded judgement for id {item['id']!r}")
        if isinstance(record.get("reply"), str):
            return criterion.parse(record["reply"])
        if all(name in record for name in criterion.fields):
            return criterion.check({name: record[name] for name in criterion.fields})
        if isinstance(record.get("content"), str):  # LLaVA's review file: the review text
            return criterion.parse(record["content"])
        raise JudgeError(f"recorded judgement for id {item['id']!r} has neither reply nor "
                         f"{'/'.join(criterion.fields)}")


@JUDGES.register("replay")
def replay_judge(spec: str, argument: str) -> Judge:
    """`replay:FILE`: recorded judgements (a judge cache file works too)."""
    return ReplayJudge(spec, argument)


# --- string match -----------------------------------------------------------------------------

def _normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", str(text).lower()).split())


class ExactJudge:
    spec = "exact"
    max_in_flight = None

    def session(self) -> contextlib.AbstractAsyncContextManager[None]:
        return _no_session()

    async def judge(self, criterion: Criterion, item: dict[str, Any], chat: Messages,
                    request: Mapping[str, Any]) -> dict[str, Any]:
        if criterion.name != "qa":
            raise ScoringError("the exact judge only scores video QA (criterion qa)")
        match = _normalise(item["pred"]) == _normalise(item["answer"])
        return {"pred": "yes" if match else "no", "score": 5 if match else 0}


@JUDGES.register("exact")
def exact_judge(spec: str, argument: str) -> Judge:
    """`exact`: yes/5 when the lower-cased, punctuation-free prediction equals the answer, else no/0."""
    return ExactJudge()


def require_llm_judge(spec: str, what: str) -> None:
    """Raises ScoringError when `spec` names the exact judge, which only matches video-QA strings."""
    if spec.partition(":")[0] == "exact":
        raise ScoringError(f"{what} needs an LLM judge, not 'exact': set the judge (--judge or scoring.judge) "
                           "to openai:MODEL[@BASE_URL], hf:PATH or replay:FILE")


def make_judge(spec: str) -> Judge:
    """Builds a judge from its spec; an unknown name fails with the close matches."""
    name, _, argument = spec.partition(":")
    return JUDGES.get(name)(spec, argument)


# --- the cache --------------------------------------------------------------------------------

def judgement_key(judge: str, criterion: Criterion, item: dict[str, Any]) -> str:
    """What decides a judgement: the judge spec, the criterion and the content put to the judge
    (its first attempt's messages and request parameters). A rewritten prediction is a new key."""
    chat, request = criterion.attempt(item, 0)
    content = json.dumps({"judge": judge, "criterion": criterion.name, "messages": chat, "request": dict(request)},
                         sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(content.encode()).hexdigest()


def read_tolerant_jsonl(path: Path) -> tuple[list[dict[str, Any]], list[int]]:
    """The JSON-object lines of a JSONL file and the numbers of the lines that are not one
    (a line torn by a crash, garbled bytes): those are skipped, never fatal."""
    records, skipped = [], []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                skipped.append(number)
                continue
            if isinstance(record, dict):
                records.append(record)
            else:
                skipped.append(number)
    return records, skipped


def _warn_skipped(path: Path, skipped: list[int]) -> None:
    if skipped:
        print(f"warning: {path}: skipped {len(skipped)} unreadable line(s) (first: line {skipped[0]}); "
              "their items are judged again", file=sys.stderr)


class JudgeCache:
    """Judged replies in a JSONL file, keyed on the judged content (see `judgement_key`).

    Each line is {judge, criterion, id, key, <judgement fields>}, so the file also replays
    (`replay:FILE`). An unreadable line (a torn last line, garbled bytes) or a judgement that no
    longer passes its criterion's checks is skipped with one warning; its item is judged again.
    Lines are appended one `write` each from one thread, so concurrent judging cannot interleave
    them.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._entries: dict[str, dict[str, Any]] = {}
        self._torn_tail = False
        if self.path.is_file():
            records, skipped = read_tolerant_jsonl(self.path)
            for record in records:
                if isinstance(record.get("key"), str):
                    self._entries[record["key"]] = record
            _warn_skipped(self.path, skipped)
            with self.path.open("rb") as handle:
                handle.seek(0, os.SEEK_END)
                if handle.tell():
                    handle.seek(-1, os.SEEK_END)
                    self._torn_tail = handle.read(1) != b"\n"

    def get(self, key: str, criterion: Criterion) -> dict[str, Any] | None:
        """The cached judgement under `key`, checked again by its criterion; None if absent."""
        record = self._entries.get(key)
        if record is None:
            return None
        try:
            return criterion.check({name: record.get(name) for name in criterion.fields})
        except JudgeError as error:
            print(f"warning: {self.path}: cached judgement of id {record.get('id')!r} is invalid ({error}); "
                  "judging it again", file=sys.stderr)
            return None

    def put(self, key: str, judge: str, criterion: str, item_id: Any, judgement: dict[str, Any]) -> None:
        """Appends one judgement (one line, flushed: a crash loses none)."""
        record = {"judge": judge, "criterion": criterion, "id": item_id, "key": key, **judgement}
        self._entries[key] = record
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, ensure_ascii=False) + "\n"
        if self._torn_tail:  # end the torn line first, or the new record would join it
            line = "\n" + line
            self._torn_tail = False
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)


# --- judging many items -----------------------------------------------------------------------

class _Pacer:
    """Spaces request starts `1 / requests_per_s` apart and holds every start during a
    Retry-After pause. Runs on one event loop, so it needs no lock."""

    def __init__(self, requests_per_s: float | None) -> None:
        self._interval = 1.0 / requests_per_s if requests_per_s else 0.0
        self._next = 0.0
        self._paused_until = 0.0

    async def wait_turn(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        start = max(now, self._next, self._paused_until)
        if self._interval:
            self._next = start + self._interval
        while start > loop.time():
            await asyncio.sleep(start - loop.time())
            start = max(start, self._paused_until)  # a Retry-After that came in meanwhile

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, asyncio.get_running_loop().time() + seconds)


def judge_all(
    judge: Judge, criterion: str | Criterion, items: list[dict[str, Any]], cache: JudgeCache,
    retries: int | None = None, backoff_s: float | None = None, settings: JudgeSettings | None = None,
) -> tuple[dict[Any, dict[str, Any]], dict[Any, str]]:
    """Judges every item, from the cache where possible, up to `settings.max_in_flight` at once.

    Args:
        judge: from `make_judge`.
        criterion: a registered criterion or its name.
        items: dicts with an `id` and the criterion's prompt fields.
        cache: replies judged before; every new judgement is appended to it.
        retries, backoff_s: shortcuts that override `settings.retries` / `settings.backoff_s`.
        settings: concurrency, rate limit, deadline and retry policy (defaults: JudgeSettings()).

    Returns:
        (id → judgement, id → last error of each unjudged item), both in item order.
    """
    settings = settings or JudgeSettings()
    overrides = {k: v for k, v in (("retries", retries), ("backoff_s", backoff_s)) if v is not None}
    settings = settings.model_copy(update=overrides)
    rule = criterion if isinstance(criterion, Criterion) else CRITERIA.get(criterion)
    coroutine = _judge_all(judge, rule, items, cache, settings)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    # Called from inside an event loop (a notebook): run on a loop of our own in a thread.
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(asyncio.run(coroutine)))
    worker.start()
    worker.join()
    return result[0]


async def _judge_all(judge: Judge, criterion: Criterion, items: list[dict[str, Any]], cache: JudgeCache,
                     settings: JudgeSettings) -> tuple[dict[Any, dict[str, Any]], dict[Any, str]]:
    outcomes: list[tuple[dict[str, Any] | None, str | None]] = [(None, None)] * len(items)
    todo: list[tuple[int, str]] = []
    for index, item in enumerate(items):
        try:
            key = judgement_key(judge.spec, criterion, item)
        except JudgeError as error:  # the item cannot be put to the judge at all
            outcomes[index] = (None, str(error))
            continue
        cached = cache.get(key, criterion)
        if cached is not None:
            outcomes[index] = (cached, None)
        else:
            todo.append((index, key))
    if todo:
        limit = min(settings.max_in_flight, judge.max_in_flight or settings.max_in_flight)
        slots = asyncio.Semaphore(limit)
        pacer = _Pacer(settings.requests_per_s)

        async def one(index: int, key: str) -> None:
            async with slots:
                outcomes[index] = await _judge_one(judge, criterion, items[index], settings, pacer)
            if outcomes[index][0] is not None:
                cache.put(key, judge.spec, criterion.name, items[index]["id"], outcomes[index][0])

        async with judge.session():
            await asyncio.gather(*(one(index, key) for index, key in todo))
    judged = {item["id"]: j for item, (j, _) in zip(items, outcomes) if j is not None}
    unjudged = {item["id"]: e for item, (j, e) in zip(items, outcomes) if j is None}
    return judged, unjudged


async def _judge_one(judge: Judge, criterion: Criterion, item: dict[str, Any], settings: JudgeSettings,
                     pacer: _Pacer) -> tuple[dict[str, Any] | None, str | None]:
    attempt, waits = 0, 0
    while True:
        await pacer.wait_turn()
        chat, request = criterion.attempt(item, attempt)
        started = time.monotonic()
        try:
            async with asyncio.timeout(settings.deadline_s):
                return await judge.judge(criterion, item, chat, request), None
        except RateLimited as error:
            if waits >= settings.rate_limit_waits:
                return None, f"{error} (still rate limited after {waits} Retry-After waits)"
            waits += 1
            wait = error.retry_after_s if error.retry_after_s is not None else settings.backoff_s * 2 ** waits
            pacer.pause(min(wait, settings.max_retry_after_s))
            continue
        except TimeoutError:
            message = (f"no complete reply within the {settings.deadline_s:g} s deadline "
                       f"(after {time.monotonic() - started:.1f} s)")
        except JudgeError as error:
            message = str(error)
        if attempt >= settings.retries:
            return None, message
        await asyncio.sleep(settings.backoff_s * 2 ** attempt)
        attempt += 1
