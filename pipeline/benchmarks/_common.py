"""Helpers shared by the benchmark readers: required paths, JSON and JSONL with line-numbered
errors, the seeded subset every reader takes with `limit`, and the question-prompt override.

Not a benchmark itself (the leading underscore keeps the registry from importing it as one).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pipeline.api import BenchmarkError, Sample

if TYPE_CHECKING:
    import pyarrow as pa

T = TypeVar("T")


def require(path: Path, what: str, hint: str) -> Path:
    """Returns `path` if it exists, else raises a BenchmarkError naming it.

    Args:
        path: file or folder the reader needs.
        what: what the path is, e.g. "COCO instances file".
        hint: what the user should do, e.g. "download annotations_trainval2014.zip".
    """
    if not path.exists():
        raise BenchmarkError(f"{what} {path} does not exist; {hint}")
    return path


def read_json(path: Path, what: str, hint: str) -> Any:
    """Loads a whole JSON document; a missing or malformed file raises BenchmarkError."""
    require(path, what, hint)
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise BenchmarkError(
            f"{what} {path} is not valid JSON (line {error.lineno}: {error.msg}); {hint}"
        ) from None
    except UnicodeDecodeError:
        raise BenchmarkError(f"{what} {path} is not UTF-8 text; {hint}") from None


@dataclass
class Line:
    """One line of a JSONL file: the parsed object, or the reason it could not be used."""

    number: int  # 1-based, as editors show it
    value: dict[str, Any] | None
    error: str | None
    kind: str = "line"  # "entry" for an element of a JSON array

    @property
    def where(self) -> str:
        """"line 3" or "entry 3", for error messages."""
        return f"{self.kind} {self.number}"


def read_jsonl(path: Path, what: str, hint: str) -> Iterator[Line]:
    """Yields every non-blank line of a JSONL file, parsed, in file order.

    A line that is not UTF-8 or not a JSON object is yielded with `error` set instead of
    raising, so the reader can turn it into an error Sample rather than lose it.
    """
    require(path, what, hint)
    with path.open("rb") as handle:  # decoded line by line: one bad byte costs only its line
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                yield Line(number, None, f"line {number}: not UTF-8 text (byte {raw[error.start]:#04x})")
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as error:
                yield Line(number, None, f"line {number}: not valid JSON ({error.msg})")
                continue
            if not isinstance(value, dict):
                yield Line(number, None, f"line {number}: expected a JSON object")
                continue
            yield Line(number, value, None)


def read_entries(path: Path, what: str, hint: str) -> Iterator[Line]:
    """Yields the objects of a file that is either JSONL or one JSON array, in file order.

    POPE releases both: its COCO files are JSONL, its SEEM-built GQA / A-OKVQA files are an
    indented JSON array. The first non-blank byte decides, whatever the file is called. An
    array element that is not an object is yielded with `error` set, as a bad JSONL line is.
    """
    require(path, what, hint)
    with path.open("rb") as handle:
        head = handle.read(4096).lstrip()
    if not head.startswith(b"["):
        yield from read_jsonl(path, what, hint)
        return
    items = read_json(path, what, hint)
    for number, item in enumerate(items, start=1):
        if isinstance(item, dict):
            yield Line(number, item, None, "entry")
        else:
            yield Line(number, None, f"entry {number}: expected a JSON object", "entry")


def missing_keys(value: dict[str, Any], keys: Sequence[str]) -> list[str]:
    """The keys of `keys` that `value` lacks or holds as null."""
    return [key for key in keys if value.get(key) is None]


def seeded_subset(items: Sequence[T], limit: int | None, seed: int) -> list[T]:
    """A seeded random subset of `limit` items, kept in their original order.

    Order is kept so that sample ids and Parquet rows stay sorted as in the released file;
    the same (items, limit, seed) always gives the same subset.
    """
    if limit is None or limit >= len(items):
        return list(items)
    chosen = sorted(random.Random(seed).sample(range(len(items)), limit))
    return [items[index] for index in chosen]


def qa_prompt(question: str, instruction: str, override: str | None) -> str:
    """The prompt of a question-answering sample: the question, a newline, the instruction.

    Args:
        question: the benchmark's question text.
        instruction: the benchmark's standard answer-format instruction ("" for none).
        override: `BenchmarkConfig.prompt`; a template with `{question}` replaces the whole
            prompt, any other text replaces the instruction.
    """
    if override is None:
        return f"{question}\n{instruction}" if instruction else question
    if "{question}" in override:
        return override.replace("{question}", question)
    return f"{question}\n{override}"


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Writes one JSON object per line, as POPE and LLaVA's question files are written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def error_sample(benchmark: str, sample_id: str, source: str, line: int, error: str) -> Sample:
    """The row of an item a reader could not parse: kept, with `error` naming file and line.

    `sample_id` must still be unique; readers derive it from the line number for that reason.
    """
    return Sample(
        sample_id=sample_id,
        benchmark=benchmark,
        prompt="",
        metadata={"source": source, "line": line},
        error=f"{source} {error}",
    )


def find_media(folder: Path, stem: str, extensions: Sequence[str]) -> Path | None:
    """The first `<folder>/<stem><ext>` that exists, trying `extensions` in order."""
    for extension in extensions:
        path = folder / f"{stem}{extension}"
        if path.is_file():
            return path
    return None


def generation_rows(table: pa.Table) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Yields (row, parsed metadata) of a generations table, for the exporters."""
    for row in table.to_pylist():
        yield row, json.loads(row.get("metadata") or "{}")


def answer_text(row: dict[str, Any]) -> str:
    """A generations row's answer for an exporter: "" for an error row, so the official
    scorer counts it as wrong rather than missing."""
    return (row["output_text"] or "") if row["error"] is None else ""
