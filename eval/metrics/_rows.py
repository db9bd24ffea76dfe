"""Splitting a run's generations into scorable rows and error rows, for every metric."""

from __future__ import annotations

import json
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
