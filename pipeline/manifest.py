"""A run's manifest: what its committed generations hold, so a later check can tell when
files went missing, changed or were added, and whether every sample is there exactly once.

`manifest.json` in the run folder lists each committed Parquet file with its row count, size
and sha256, and the sample counts (expected from the benchmark, present, with an error).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipeline.schema import GENERATIONS_DIR, generation_files

MANIFEST_FILE = "manifest.json"
MANIFEST_VERSION = 1


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def scan_generations(run_dir: Path) -> tuple[list[dict[str, Any]], Counter[str], int]:
    """Reads every committed file of a run as it is on disk, duplicates included.

    Returns:
        (one entry {name, rows, bytes, sha256} per file, sample_id → number of rows, error rows)
    """
    files, counts, n_errors = [], Counter(), 0
    for path in generation_files(run_dir):
        table = pq.read_table(path, columns=["sample_id", "error"])
        counts.update(table.column("sample_id").to_pylist())
        n_errors += table.num_rows - table.column("error").null_count
        files.append(
            {"name": path.name, "rows": table.num_rows, "bytes": path.stat().st_size, "sha256": file_sha256(path)}
        )
    return files, counts, n_errors


def build_manifest(run_dir: Path, run_id: str, n_expected: int) -> dict[str, Any]:
    """The manifest of a run's generations as they are now.

    Args:
        run_dir: the run folder holding generations/.
        run_id: the run's id, recorded so a manifest cannot be mistaken for another run's.
        n_expected: samples the benchmark holds for this run's config.
    """
    files, counts, n_errors = scan_generations(run_dir)
    return {
        "manifest_version": MANIFEST_VERSION,
        "run_id": run_id,
        "generations_dir": GENERATIONS_DIR,
        "files": files,
        "n_rows": sum(entry["rows"] for entry in files),
        "n_samples_expected": n_expected,
        "n_samples_present": len(counts),
        "n_errors": n_errors,
    }


def write_manifest(run_dir: Path, run_id: str, n_expected: int) -> dict[str, Any]:
    """Builds the manifest and writes it to `<run_dir>/manifest.json` (replaced atomically)."""
    manifest = build_manifest(run_dir, run_id, n_expected)
    partial = run_dir / f".{MANIFEST_FILE}.partial"
    partial.write_text(json.dumps(manifest, indent=2))
    partial.replace(run_dir / MANIFEST_FILE)
    return manifest


def foreign_rows(run_dir: Path, run_id: str) -> Counter[str]:
    """Rows of the committed files whose run_id is not `run_id`, counted by the run_id they carry."""
    strangers: Counter[str] = Counter()
    for path in generation_files(run_dir):
        strangers.update(r for r in pq.read_table(path, columns=["run_id"]).column("run_id").to_pylist() if r != run_id)
    return strangers


def check_generations(
    run_dir: Path, manifest: dict[str, Any], expected_ids: set[str], run_id: str | None = None
) -> list[str]:
    """Compares a run's generations with its manifest and the benchmark's sample ids.

    Args:
        run_id: when given, every row must carry it (a file copied from another run would not).

    Returns:
        One line per problem (missing, extra or changed files, duplicate, missing or unknown
        samples, rows of another run, counts that disagree); empty when the generations are intact.
    """
    problems = []
    listed = {entry["name"]: entry for entry in manifest.get("files", [])}
    on_disk = {path.name: path for path in generation_files(run_dir)}
    for name in sorted(listed.keys() - on_disk.keys()):
        problems.append(f"{GENERATIONS_DIR}/{name} is listed in the manifest but missing")
    for name in sorted(on_disk.keys() - listed.keys()):
        problems.append(f"{GENERATIONS_DIR}/{name} is not listed in the manifest")
    for name in sorted(listed.keys() & on_disk.keys()):
        if file_sha256(on_disk[name]) != listed[name]["sha256"]:
            problems.append(f"{GENERATIONS_DIR}/{name} changed since the manifest was written (sha256 differs)")
    try:
        files, counts, n_errors = scan_generations(run_dir)
    except (OSError, ValueError) as error:  # pyarrow raises ArrowInvalid (a ValueError) on a corrupt file
        return [*problems, f"{GENERATIONS_DIR}/ cannot be read: {error}"]
    if run_id is not None and (strangers := foreign_rows(run_dir, run_id)):
        other, _ = strangers.most_common(1)[0]
        problems.append(f"{sum(strangers.values())} row(s) carry another run's run_id, e.g. {other!r}")
    duplicated = sorted(sample_id for sample_id, n in counts.items() if n > 1)
    if duplicated:
        problems.append(f"{len(duplicated)} sample(s) appear more than once, e.g. {duplicated[:3]}")
    missing = sorted(expected_ids - counts.keys())
    if missing:
        problems.append(f"{len(missing)} sample(s) of the benchmark have no row, e.g. {missing[:3]}")
    unknown = sorted(counts.keys() - expected_ids)
    if unknown:
        problems.append(f"{len(unknown)} row(s) are for samples the benchmark does not hold, e.g. {unknown[:3]}")
    actual = {
        "n_rows": sum(entry["rows"] for entry in files),
        "n_samples_expected": len(expected_ids),
        "n_samples_present": len(counts),
        "n_errors": n_errors,
    }
    for key, value in actual.items():
        if manifest.get(key) != value:
            problems.append(f"manifest {key} is {manifest.get(key)!r} but the run holds {value}")
    return problems
