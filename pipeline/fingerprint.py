"""The benchmark fingerprint of a run: what each sample was when the run started, so a resume
notices a benchmark that was edited underneath it (a label fixed, an image replaced, a question
removed) instead of mixing old and new rows.

Per sample: a digest of its prompt, a digest of its labels (reference, metadata, reader error)
and its image or video file's path, size and modification time (stat only: hashing every image
on each start would read the whole dataset from the driver). `<run_dir>/benchmark_fingerprint.parquet`
holds them; `run.json` records their combined sha256. A copy of the dataset that does not keep
modification times (`cp` without `-p`) reads as "image changed" for every sample.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.api import BenchmarkError, Sample

FINGERPRINT_FILE = "benchmark_fingerprint.parquet"
FINGERPRINT_SCHEMA = pa.schema([
    ("sample_id", pa.string()), ("prompt", pa.string()), ("labels", pa.string()), ("file", pa.string()),
])
_PARTS = {"prompt": "prompt", "labels": "labels/metadata", "file": "image/video file"}


class BenchmarkChangedError(BenchmarkError):
    """The benchmark differs from the one the run started with; the message says how."""


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def _file_state(path: str | None) -> str:
    if not path:
        return "none"
    try:
        stat = os.stat(path)
    except OSError:
        return f"{path}:missing"
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


def sample_fingerprint(sample: Sample) -> tuple[str, str, str]:
    """(prompt digest, labels digest, file state) of one sample."""
    row = sample.to_row()
    labels = _digest([row["benchmark"], row["reference"], row["metadata"], row["error"]])
    return _digest(row["prompt"]), labels, _file_state(sample.video_path or sample.image_path)


@dataclass
class FingerprintCheck:
    """Compares the samples of this start, one at a time, with the recorded fingerprint."""

    recorded: dict[str, tuple[str, str, str]] | None  # None: the run has no fingerprint yet
    current: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    changed: dict[str, list[str]] = field(default_factory=dict)  # sample id -> parts that differ

    def see(self, sample: Sample) -> bool:
        """Records a sample; True when it differs from the recorded one (it must be regenerated)."""
        mark = sample_fingerprint(sample)
        self.current[sample.sample_id] = mark
        if self.recorded is None or sample.sample_id not in self.recorded:
            return False
        old = self.recorded[sample.sample_id]
        parts = [_PARTS[name] for name, a, b in zip(_PARTS, old, mark) if a != b]
        if parts:
            self.changed[sample.sample_id] = parts
        return bool(parts)

    def differences(self, committed: set[str] | None = None) -> Differences:
        """How the benchmark differs from the recorded one.

        Args:
            committed: when given, only what makes committed rows stale: changed or removed
                samples that have a row, and added samples once any row exists (the scores
                would mix benchmarks). A sample without a row is generated from the current
                benchmark anyway.
        """
        if self.recorded is None:
            return Differences({}, [], [])
        changed = self.changed
        removed = sorted(self.recorded.keys() - self.current.keys())
        added = sorted(self.current.keys() - self.recorded.keys())
        if committed is not None:
            changed = {k: v for k, v in changed.items() if k in committed}
            removed = [k for k in removed if k in committed]
            added = added if committed else []
        return Differences(changed, removed, added)


@dataclass
class Differences:
    """Samples whose fingerprint changed (with the parts that did), removed and added ones."""

    changed: dict[str, list[str]]
    removed: list[str]
    added: list[str]

    def __bool__(self) -> bool:
        return bool(self.changed or self.removed or self.added)

    def describe(self) -> str:
        """One line: how many samples changed, how, and examples."""
        parts = []
        if self.changed:
            kinds = Counter(part for changed in self.changed.values() for part in changed)
            how = ", ".join(f"{kind} {n}x" for kind, n in sorted(kinds.items()))
            parts.append(f"{len(self.changed)} changed ({how}; e.g. {sorted(self.changed)[:3]})")
        if self.removed:
            parts.append(f"{len(self.removed)} removed (e.g. {self.removed[:3]})")
        if self.added:
            parts.append(f"{len(self.added)} added (e.g. {self.added[:3]})")
        return "; ".join(parts)


def fingerprint_path(run_dir: Path) -> Path:
    return Path(run_dir) / FINGERPRINT_FILE


def read_fingerprint(run_dir: Path) -> dict[str, tuple[str, str, str]] | None:
    """The recorded per-sample fingerprint, or None when the run has none (or it is unreadable)."""
    path = fingerprint_path(run_dir)
    if not path.is_file():
        return None
    try:
        rows = pq.read_table(path).to_pylist()
    except (OSError, ValueError):
        return None
    return {row["sample_id"]: (row["prompt"], row["labels"], row["file"]) for row in rows}


def write_fingerprint(run_dir: Path, marks: dict[str, tuple[str, str, str]]) -> str:
    """Writes the per-sample fingerprint atomically; returns its combined sha256."""
    ids = sorted(marks)
    table = pa.table({
        "sample_id": ids, "prompt": [marks[i][0] for i in ids],
        "labels": [marks[i][1] for i in ids], "file": [marks[i][2] for i in ids],
    }, schema=FINGERPRINT_SCHEMA)
    path = fingerprint_path(run_dir)
    partial = path.with_name(f".{path.name}.partial")
    pq.write_table(table, partial)
    os.replace(partial, path)
    return combined_digest(marks)


def combined_digest(marks: dict[str, tuple[str, str, str]]) -> str:
    digest = hashlib.sha256()
    for sample_id in sorted(marks):
        digest.update(json.dumps([sample_id, *marks[sample_id]]).encode())
    return digest.hexdigest()
