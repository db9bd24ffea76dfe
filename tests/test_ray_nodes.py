"""The ports tests and benchmarks give to the Ray nodes they start (tests/ray_nodes.py)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import ray_nodes
from ray_nodes import RAY_WORKER_PORTS_END, free_port, free_ports


def test_ports_are_bindable_distinct_and_outside_the_kernels_outgoing_range():
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = free_ports(50) + [free_port() for _ in range(50)]
    assert len(set(ports)) == 100, "a port was handed out twice"
    assert all(not low <= port <= high and port >= RAY_WORKER_PORTS_END for port in ports)
    for port in ports[:10]:
        with socket.socket() as sock:
            sock.bind(("", port))


def test_a_port_held_by_a_listener_is_never_handed_out(monkeypatch):
    windows = (range(start, start + 40) for start in range(RAY_WORKER_PORTS_END, 30000, 40))
    window = next(window for window in windows if all(map(ray_nodes._is_free, window)))
    monkeypatch.setattr(ray_nodes, "_candidate_range", lambda: window)
    monkeypatch.setattr(ray_nodes, "_handed_out", set())
    listeners = []
    try:
        for port in window[::2]:  # held as another process would hold them
            sock = socket.socket()
            sock.bind(("127.0.0.1", port))
            sock.listen()
            listeners.append(sock)
        assert sorted(free_ports(20)) == list(window[1::2])
        with pytest.raises(RuntimeError, match=f"fewer than 1 free ports in {window.start}-{window.stop - 1}"):
            free_port()
    finally:
        for sock in listeners:
            sock.close()
