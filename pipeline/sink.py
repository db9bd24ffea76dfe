"""The pipeline's Ray Data sink: each write task's rows become one Parquet file, atomically.

Kept apart from `pipeline.run` so that the write tasks' worker processes import pyarrow and
Ray only (unpickling a sink from `pipeline.run` imported torch and transformers, ~7 s of CPU
per worker process).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from ray.data import Datasink
from ray.data.block import BlockAccessor

from pipeline.schema import GENERATION_SCHEMA


class CommittedParquetSink(Datasink):
    """Writes each write task's rows to one Parquet file that appears atomically (rename).

    The file is named after the sample ids it holds, so a write task that Ray retries (its
    worker died after the rename) replaces its own file instead of committing a duplicate.
    """

    def __init__(self, folders: Mapping[str, Path]) -> None:
        """Args: folders: run_id -> that run's generations/ folder (a grid writes many runs)."""
        self.folders = dict(folders)

    def write(self, blocks: Iterable, ctx) -> int:
        tables = [BlockAccessor.for_block(block).to_arrow() for block in blocks]
        tables = [t for t in tables if t.num_rows]
        if not tables:
            return 0
        table = pa.concat_tables(tables).cast(GENERATION_SCHEMA)
        run_ids = table.column("run_id")
        for run_id in pc.unique(run_ids).to_pylist():
            self._commit(table.filter(pc.equal(run_ids, run_id)), self.folders[run_id])
        return table.num_rows

    @staticmethod
    def _commit(table: pa.Table, folder: Path) -> None:
        ids = "\n".join(sorted(table.column("sample_id").to_pylist()))
        name = f"part-{hashlib.sha256(ids.encode()).hexdigest()[:24]}.parquet"
        # A unique temporary name: two attempts of one task may overlap and must not share it.
        partial = folder / f".{name}.{uuid.uuid4().hex}.partial"
        pq.write_table(table, partial)
        os.replace(partial, folder / name)
