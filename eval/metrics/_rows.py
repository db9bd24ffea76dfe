"""Splitting a run's generations into scorable rows and error rows, for every metric."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from eval.api import ScoringError

Row = tuple[dict[str, Any], dict[str, Any]]  # (Parquet row, its parsed metadata)


def run_rows(generations: pa.Table) -> list[Row]:
    """Every row (in the table's order), each with its parsed metadata.

    Raises:
        ScoringError: a row's metadata is not a JSON object (names the sample_id).
    """
    rows: list[Row] = []
    for row in generations.to_pylist():
        try:
            rows.append((row, json.loads(row.get("metadata") or "{}")))
        except json.JSONDecodeError as error:
            raise ScoringError(f"sample {row.get('sample_id')}: metadata is not JSON: {error.msg}") from None
    return rows


def split_rows(generations: pa.Table) -> tuple[list[Row], list[Row]]:
    """Returns (rows without error, rows with error), each row with its parsed metadata."""
    rows = run_rows(generations)
    return [r for r in rows if r[0].get("error") is None], [r for r in rows if r[0].get("error") is not None]


def judged_rows(rows: list[Row], judged: dict[Any, dict[str, Any]], key: str, blank: dict[str, Any]) -> list[dict[str, Any]]:
    """Each row's outcome from a judged metric's outcomes by item id (`metadata[key]`), marked
    `failed` for an error row; an error row, never sent to the judge, gets `blank` with its id."""
    outcomes = []
    for row, meta in rows:
        failed = row.get("error") is not None
        outcome = None if failed else judged.get(meta.get(key))
        outcomes.append({**(outcome or {**blank, "id": meta.get(key)}), "failed": failed})
    return outcomes


def counting_errors(score: Callable[[list[dict[str, Any]]], dict[str, Any]]) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
    """An aggregate over the outcomes of the rows that generated, plus `n_errors` (the error
    rows, counted and never judged)."""
    def aggregate(outcomes: list[dict[str, Any]]) -> dict[str, Any]:
        generated = [o for o in outcomes if not o["failed"]]
        return {**score(generated), "n_errors": len(outcomes) - len(generated)}

    return aggregate
