"""What the commands print while they work: halleval's own progress lines, not Ray's logs.

By default Ray's worker output, Ray Data's execution logs and its progress bars stay off the
console (they still go to Ray's log files under /tmp/ray/session_*/logs). `--verbose` (any
command) or HALLEVAL_VERBOSE=1 brings them back.

Progress counts the samples the pipeline has committed to each run's generations/ folder, so
it is the number that survives a crash: done/total, samples per second, ETA and errors so far.
On a terminal it redraws one line; in a log (stdout not a terminal) it prints a plain line
every `LOG_EVERY_S` seconds and when a run finishes.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

VERBOSE_ENV = "HALLEVAL_VERBOSE"
POLL_S = 1.0  # how often the committed files are counted
LOG_EVERY_S = 10.0  # plain-line progress interval when stdout is not a terminal


def verbose() -> bool:
    """Whether Ray's and Ray Data's own logs are wanted (--verbose or HALLEVAL_VERBOSE=1)."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def quiet_ray_data() -> None:
    """Turns Ray Data's progress bars and execution logs off, unless verbose."""
    import logging

    import ray.data

    if verbose():
        return
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.enable_operator_progress_bars = False
    context.print_on_execution_start = False
    # ERROR: Ray Data warns that the progress bars it was told to disable are disabled.
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    logging.getLogger("ray").setLevel(logging.ERROR)


def duration(seconds: float | None) -> str:
    """Seconds as `1h02m`, `3m05s` or `42s`; a dash when unknown."""
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class CommittedCounter:
    """Counts rows and error rows of the Parquet files committed to some folders since it started.

    Files present at start (resumed samples) are not counted; each new file is read once
    (its metadata and its `error` column).
    """

    def __init__(self, folders: Mapping[str, Path]) -> None:
        self.folders = dict(folders)
        self._seen = {path for folder in self.folders.values() for path in self._files(folder)}
        self.rows: dict[str, int] = {key: 0 for key in self.folders}
        self.errors: dict[str, int] = {key: 0 for key in self.folders}

    @staticmethod
    def _files(folder: Path) -> list[Path]:
        return sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []

    def update(self) -> None:
        import pyarrow.parquet as pq

        for key, folder in self.folders.items():
            for path in self._files(folder):
                if path in self._seen:
                    continue
                try:
                    column = pq.read_table(path, columns=["error"]).column("error")
                except OSError:  # replaced by a retried write task while we read: next poll
                    continue
                self._seen.add(path)
                self.rows[key] += len(column)
                self.errors[key] += len(column) - column.null_count


class Progress:
    """Reports generation progress over several runs (one model group of a pipeline).

    Use as `with Progress(todo, folders): ...` around the pipeline: a thread polls the
    folders and writes to `stream`; leaving the block prints the final line.

    Args:
        todo: run id -> samples to generate in this invocation.
        folders: run id -> that run's generations/ folder.
        stream: where lines go (stderr by default, so stdout stays the commands' results).
        clock: seconds (injectable for tests).
    """

    def __init__(self, todo: Mapping[str, int], folders: Mapping[str, Path], stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.todo = dict(todo)
        self.counter = CommittedCounter(folders)
        self.stream = stream or sys.stderr
        self.clock = clock
        self.tty = self.stream.isatty()
        self._start = clock()
        self._last_line = self._start
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def line(self) -> str:
        """One progress line: done/total, rate, ETA, errors (all runs of the group together)."""
        total = sum(self.todo.values())
        done = min(sum(self.counter.rows.values()), total)
        errors = sum(self.counter.errors.values())
        elapsed = max(self.clock() - self._start, 1e-9)
        rate = done / elapsed
        eta = (total - done) / rate if rate > 0 else None
        runs = f"{len(self.todo)} runs, " if len(self.todo) > 1 else ""
        percent = 100 * done / total if total else 100.0
        return (f"generating: {runs}{done}/{total} samples ({percent:.0f}%), {rate:.2f} samples/s, "
                f"elapsed {duration(elapsed)}, ETA {duration(eta) if done < total else '0s'}, errors {errors}")

    def poll(self) -> None:
        """Counts newly committed files and writes a line when one is due."""
        self.counter.update()
        now = self.clock()
        if self.tty:
            self.stream.write("\r\033[K" + self.line())
            self.stream.flush()
        elif now - self._last_line >= LOG_EVERY_S:
            self._last_line = now
            print(self.line(), file=self.stream, flush=True)

    def _loop(self) -> None:
        while not self._stop.wait(POLL_S):
            self.poll()

    def __enter__(self) -> Progress:
        self._thread = threading.Thread(target=self._loop, name="halleval-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.counter.update()
        if self.tty:
            self.stream.write("\r\033[K")
        print(self.line(), file=self.stream, flush=True)


@contextmanager
def watch_progress(todo: Mapping[str, int], folders: Mapping[str, Path]) -> Iterator[None]:
    """The progress hook `pipeline.run.generate_many` calls around each model group's pipeline."""
    with Progress(todo, folders):
        yield
