"""Ports for the Ray nodes that tests and benchmarks start with `ray start` on loopback.

Such a node needs ports of its own (another Ray of the session holds the defaults), named on
its command line before it binds them. A port found with `bind(0)` comes from the kernel's
ephemeral range, the range it also draws every outgoing connection's local port from: once the
probe socket closes, a connection of one of Ray's own processes can take the port before the
node binds it. Then the node manager never starts and `ray start` gives up ~30 s later ("The
current node timed out during startup"); CI saw a worker node never join that way. So ports are
drawn from below that range and above Ray's worker ports (10002-19999), where only a process
that binds the port by number can take it, and each is handed out once per process.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

RAY_WORKER_PORTS_END = 20000
_handed_out: set[int] = set()


def _candidate_range() -> range:
    """Ports no outgoing connection takes: those between Ray's worker ports and the kernel's
    ephemeral range, else those above it; the whole range where the kernel leaves neither."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):  # not Linux: the IANA ephemeral range
        low, high = 49152, 65535
    for band in (range(RAY_WORKER_PORTS_END, low), range(high + 1, 65536)):
        if len(band) >= 1000:
            return band
    return range(RAY_WORKER_PORTS_END, 65536)


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("", port))  # every interface: a port held on any address is busy
        except OSError:
            return False
        return True


def free_ports(count: int) -> list[int]:
    """`count` distinct ports that are free now and were not handed out before in this process."""
    band = _candidate_range()
    found: list[int] = []
    for port in random.sample(band, len(band)):
        if port not in _handed_out and _is_free(port):
            _handed_out.add(port)
            found.append(port)
            if len(found) == count:
                return found
    raise RuntimeError(f"fewer than {count} free ports in {band.start}-{band.stop - 1}")


def free_port() -> int:
    return free_ports(1)[0]
