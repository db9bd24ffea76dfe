"""The Parquet schema of a run's generations: one row per sample, defined once here.

docs/schema.md documents every column. Column names are API: scorers, reports and users'
notebooks read them, so a rename is a breaking change.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

_float_list = pa.list_(pa.float32())

GENERATION_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("benchmark", pa.string(), nullable=False),
        pa.field("benchmark_version", pa.string()),
        pa.field("model", pa.string(), nullable=False),
        pa.field("method", pa.string(), nullable=False),
        pa.field("prompt", pa.string()),
        pa.field("image_path", pa.string()),
        pa.field("video_path", pa.string()),
        pa.field("reference", pa.string()),
        pa.field("metadata", pa.string()),  # JSON object, benchmark-specific (image_id, label, ...)
        pa.field("output_text", pa.string()),
        pa.field("token_ids", pa.list_(pa.int32())),
        pa.field("tokens", pa.list_(pa.string())),
        pa.field("token_offsets", pa.list_(pa.int32())),  # start char of each token in output_text
        pa.field("logprobs", _float_list),
        pa.field("saliency", _float_list),  # S of each accepted token; null when not recorded
        pa.field("tau", _float_list),  # SGRS threshold at each step
        pa.field("rejections", pa.list_(pa.int16())),  # SGRS draws rejected at each step
        pa.field("fallback", pa.list_(pa.bool_())),  # SGRS fell back to the best-saliency candidate
        pa.field("total_rejections", pa.int32()),
        pa.field("total_fallbacks", pa.int32()),
        pa.field("candidate_ids", pa.list_(pa.list_(pa.int32()))),  # only with record_candidates
        pa.field("candidate_saliency", pa.list_(_float_list)),
        # JSON object: a method's own per-token records, name -> one value per token (e.g. DoLa's
        # premature_layer, OPERA's penalty); null for methods without any
        pa.field("method_fields", pa.string()),
        pa.field("n_generated", pa.int32()),
        pa.field("latency_s", pa.float64()),
        pa.field("seed", pa.int64()),
        pa.field("error", pa.string()),  # null when the sample was generated fine
    ]
)

GENERATIONS_DIR = "generations"


def to_table(rows: list[dict]) -> pa.Table:
    """Builds a table with exactly GENERATION_SCHEMA from row dicts (missing keys are null)."""
    columns = {f.name: [row.get(f.name) for row in rows] for f in GENERATION_SCHEMA}
    return pa.Table.from_pydict(columns, schema=GENERATION_SCHEMA)


def generation_files(run_dir: str | Path) -> list[Path]:
    """Committed Parquet files of a run; in-progress temporaries start with '.' and are ignored."""
    folder = Path(run_dir) / GENERATIONS_DIR
    return sorted(p for p in folder.glob("*.parquet") if not p.name.startswith("."))


def read_generations(run_dir_or_folder: str | Path, columns: list[str] | None = None) -> pa.Table:
    """Reads a run's generations (a run folder or its generations/ folder), one row per sample.

    A retried write can commit the same sample twice; rows are deterministic per sample, so
    the first copy (in file order) is kept and the result holds each sample_id once.
    """
    path = Path(run_dir_or_folder)
    run_dir = path.parent if path.name == GENERATIONS_DIR else path
    files = generation_files(run_dir)
    if not files:
        raise FileNotFoundError(f"no generations in {run_dir / GENERATIONS_DIR}; run the model first")
    wanted = None if columns is None else sorted(set(columns) | {"sample_id"}, key=GENERATION_SCHEMA.names.index)
    table = pa.concat_tables(pq.read_table(f, columns=wanted) for f in files)
    seen: set[str] = set()
    keep = []
    for index, sample_id in enumerate(table.column("sample_id").to_pylist()):
        if sample_id not in seen:
            seen.add(sample_id)
            keep.append(index)
    return table.take(keep) if len(keep) < table.num_rows else table
