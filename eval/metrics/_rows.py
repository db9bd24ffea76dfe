"""Splitting a run's generations into scorable rows and error rows, for every metric."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from eval.api import ScoringError

Row = tuple[dict[str, Any], dict[str, Any]]  # (Parquet row, its parsed metadata)


def split_rows(generations: pa.Table) -> tuple[list[Row], list[Row]]:
    """Returns (rows without error, rows with error), each row with its parsed metadata.

    Raises:
        ScoringError: a row's metadata is not a JSON object (names the sample_id).
    """
    ok: list[Row] = []
    failed: list[Row] = []
    for row in generations.to_pylist():
        try:
            metadata = json.loads(row.get("metadata") or "{}")
        except json.JSONDecodeError as error:
            raise ScoringError(f"sample {row.get('sample_id')}: metadata is not JSON: {error.msg}") from None
        (ok if row.get("error") is None else failed).append((row, metadata))
    return ok, failed
