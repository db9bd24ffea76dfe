"""Reading scorer inputs and writing scorer outputs, shared by every metric.

Every reader error is a ScoringError or FileNotFoundError whose one-line message names the
file (and the line, for JSONL), so `halleval score` can print it without a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def cache_dir() -> Path:
    """Where built vocabularies and ground truth are cached: $HALLEVAL_CACHE or ~/.cache/halleval."""
    root = Path(os.environ.get("HALLEVAL_CACHE") or Path.home() / ".cache" / "halleval")
    root.mkdir(parents=True, exist_ok=True)
    return root


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Reads a JSON list of objects, or JSONL (one object per non-blank line).

    A file whose first non-blank character is '[' is read as one JSON document; anything else
    as JSONL, so both formats work whatever the file is called.

    Raises:
        FileNotFoundError: the file does not exist.
        ScoringError: text that is not UTF-8 or malformed JSON (with its line number), or a
            record that is not an object.
    """
    from eval.api import ScoringError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ScoringError(f"{path}:{line}: not UTF-8 text (byte {data[error.start]:#04x})") from None
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as error:
            raise ScoringError(f"{path}:{error.lineno}: malformed JSON: {error.msg}") from None
        where = [f"{path}: item {i}" for i in range(len(records))]
    else:
        records, where = [], []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                if not records and _is_one_document(text):  # e.g. problems.json given as answers
                    raise ScoringError(f"{path}: one JSON document, not JSONL records or a JSON list of "
                                       "them; check which file this option takes") from None
                raise ScoringError(f"{path}:{number}: malformed JSON line: {error.msg}") from None
            where.append(f"{path}:{number}")
    for record, place in zip(records, where):
        if not isinstance(record, dict):
            raise ScoringError(f"{place}: expected a JSON object, got {type(record).__name__}")
    return records


def _is_one_document(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def read_json_file(path: str | Path) -> Any:
    """Reads one JSON document (e.g. ScienceQA's problems.json, VizWiz's val.json).

    Raises:
        FileNotFoundError: the file does not exist.
        ScoringError: not UTF-8 or not valid JSON (with the line number).
    """
    from eval.api import ScoringError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ScoringError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise ScoringError(f"{path}:{error.lineno}: malformed JSON: {error.msg}") from None


def require(record: dict[str, Any], keys: tuple[str, ...], place: str) -> None:
    """Raises ScoringError naming `place` when `record` lacks one of `keys`."""
    from eval.api import ScoringError

    missing = [key for key in keys if key not in record]
    if missing:
        raise ScoringError(f"{place}: missing key {missing[0]!r} (needs {', '.join(keys)})")


def write_result(result: dict[str, Any], out: str | Path | None) -> None:
    """Writes a result as indented JSON to `out`, or to stdout when `out` is None."""
    text = json.dumps(result, indent=2, ensure_ascii=False) + "\n"
    if out is None:
        sys.stdout.write(text)
        return
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
