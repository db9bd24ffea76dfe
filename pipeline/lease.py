"""One owner per run folder: a lease file that a second driver respects and a dead owner's
lease lets go of.

`<run_dir>/.lease.json` names the owner (host, pid, process start time, command, when it took
the lease) and carries a heartbeat that a background thread refreshes every `heartbeat_s`.
Another driver that finds the file refuses with one line naming the owner, unless the lease is
stale:

- same host, and the owner's process is gone (or its pid now belongs to a process that started
  later): the lease is free at once, so a killed `halleval run` never blocks the next one;
- any host, and the heartbeat is older than `ttl_s`: the owner is on a machine we cannot look
  into (the head node of `ray job submit`, another login node) and has stopped beating.

The file is created with O_EXCL, so two drivers starting together cannot both take it. A stale
lease is broken by renaming it aside first; only the driver whose rename moved the very lease it
judged stale goes on, the others look again.

Leases are re-entrant within a process (a grid takes one per cell in `generate_many`, then again
in `execute`), counted, and released when the last holder leaves.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil

LEASE_FILE = ".lease.json"
HEARTBEAT_S = 10.0
# Ten missed heartbeats: long enough for a driver stalled by a busy NFS server or a paused VM,
# short enough that a dead remote owner blocks a re-submission for a couple of minutes at most.
TTL_S = float(os.environ.get("HALLEVAL_LEASE_TTL_S", 120))


class RunLockedError(RuntimeError):
    """The run folder is owned by another live driver; the message names it and what to do."""


@dataclass
class _Held:
    token: str
    count: int
    stop: threading.Event
    thread: threading.Thread


_HELD: dict[Path, _Held] = {}
_HELD_LOCK = threading.Lock()


def _process_started(pid: int) -> float | None:
    """The start time of a live process, or None when it is gone (a zombie counts as gone)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process.create_time()
    except psutil.Error:
        return None


def _owner_record(token: str) -> dict[str, Any]:
    now = time.time()
    return {
        "token": token,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "process_started": _process_started(os.getpid()),
        "command": " ".join(sys.argv)[:300],
        "acquired_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "heartbeat": now,
    }


def read_lease(run_dir: Path) -> dict[str, Any] | None:
    """The current lease record, or None when the folder has none (or an unreadable one)."""
    try:
        data = json.loads((Path(run_dir) / LEASE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def stale_reason(lease: dict[str, Any], ttl_s: float = TTL_S, now: float | None = None) -> str | None:
    """Why a lease no longer holds (its owner is dead or silent), or None while it holds."""
    now = time.time() if now is None else now
    if lease.get("host") == socket.gethostname() and isinstance(lease.get("pid"), int):
        started = _process_started(lease["pid"])
        if started is None:
            return f"its owner (pid {lease['pid']}) is gone"
        recorded = lease.get("process_started")
        if isinstance(recorded, (int, float)) and abs(started - recorded) > 1:
            return f"pid {lease['pid']} now belongs to another process"
    heartbeat = lease.get("heartbeat")
    if not isinstance(heartbeat, (int, float)):
        return "it has no heartbeat"
    if now - heartbeat > ttl_s:
        return f"its last heartbeat was {now - heartbeat:.0f}s ago (over the {ttl_s:.0f}s lease)"
    return None


def describe_owner(lease: dict[str, Any], now: float | None = None) -> str:
    now = time.time() if now is None else now
    beat = lease.get("heartbeat")
    ago = f", heartbeat {now - beat:.0f}s ago" if isinstance(beat, (int, float)) else ""
    return (f"pid {lease.get('pid')} on {lease.get('host')} (since {lease.get('acquired_at')}{ago}; "
            f"command: {lease.get('command')})")


def _create(path: Path, record: dict[str, Any]) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        json.dump(record, handle)
    return True


def _break(path: Path, judged: dict[str, Any]) -> None:
    """Moves a stale lease aside; puts it back if what moved was not the lease judged stale."""
    aside = path.with_name(f"{path.name}.broken-{uuid.uuid4().hex}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return  # another driver broke it first
    try:
        moved = json.loads(aside.read_text())
    except (OSError, ValueError):
        moved = None
    if isinstance(moved, dict) and moved.get("token") != judged.get("token"):
        try:
            os.link(aside, path)  # a fresh lease was taken meanwhile: restore it (unless replaced)
        except FileExistsError:
            pass
    aside.unlink(missing_ok=True)


def _beat(path: Path, token: str, stop: threading.Event, heartbeat_s: float) -> None:
    while not stop.wait(heartbeat_s):
        lease = read_lease(path.parent)
        if lease is None or lease.get("token") != token:
            return  # broken by another driver (we were silent past the TTL): stop claiming it
        lease["heartbeat"] = time.time()
        partial = path.with_name(f".{path.name}.{token}.partial")
        try:
            partial.write_text(json.dumps(lease))
            os.replace(partial, path)
        except OSError:  # the folder went away (deleted by hand); nothing left to claim
            return


def acquire(run_dir: Path, ttl_s: float = TTL_S, heartbeat_s: float = HEARTBEAT_S, log=print) -> None:
    """Takes the run folder's lease (or counts one more hold when this process has it).

    Raises:
        RunLockedError: a live driver owns the folder.
    """
    run_dir = Path(run_dir).resolve()
    with _HELD_LOCK:
        if run_dir in _HELD:
            _HELD[run_dir].count += 1
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / LEASE_FILE
        token = uuid.uuid4().hex
        for _ in range(20):
            if _create(path, _owner_record(token)):
                break
            lease = read_lease(run_dir)
            if lease is None:  # half-written by a driver that is creating it right now
                time.sleep(0.05)
                lease = read_lease(run_dir)
                if lease is None:
                    _break(path, {})
                    continue
            reason = stale_reason(lease, ttl_s)
            if reason is None:
                raise RunLockedError(
                    f"{run_dir} is in use by {describe_owner(lease)}; wait for it to finish or stop "
                    f"it (a dead owner's lease is released after {ttl_s:.0f}s without a heartbeat)"
                )
            log(f"{run_dir.name}: taking over a stale lease ({reason})")
            _break(path, lease)
        else:
            raise RunLockedError(f"{run_dir}: could not take the lease {path} (it keeps changing)")
        stop = threading.Event()
        thread = threading.Thread(target=_beat, args=(path, token, stop, heartbeat_s), daemon=True,
                                  name=f"lease-{run_dir.name}")
        thread.start()
        _HELD[run_dir] = _Held(token, 1, stop, thread)


def release(run_dir: Path) -> None:
    """Drops one hold; the last one stops the heartbeat and removes the lease file if ours."""
    run_dir = Path(run_dir).resolve()
    with _HELD_LOCK:
        held = _HELD.get(run_dir)
        if held is None:
            return
        held.count -= 1
        if held.count:
            return
        del _HELD[run_dir]
    held.stop.set()
    held.thread.join()
    lease = read_lease(run_dir)
    if lease is not None and lease.get("token") == held.token:
        (run_dir / LEASE_FILE).unlink(missing_ok=True)


@contextmanager
def run_lease(run_dirs: list[Path] | Path, log=print, **options) -> Iterator[None]:
    """Holds the leases of one or several run folders (all or none) for the block."""
    folders = [run_dirs] if isinstance(run_dirs, Path) else list(run_dirs)
    taken: list[Path] = []
    try:
        for folder in folders:
            acquire(folder, log=log, **options)
            taken.append(folder)
        yield
    finally:
        for folder in reversed(taken):
            release(folder)
