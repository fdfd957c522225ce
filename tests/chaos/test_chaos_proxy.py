"""The chaos run's fault proxy: latency added to each round trip, a blackhole that holds
everything until it heals, and the map from its upstream ports to its clients' ports."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.cluster import Proxy


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Proxy]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    running = Proxy(tmp_path, server.server_address[1])
    running.start()
    try:
        yield running
    finally:
        running.stop()
        server.shutdown()
        server.server_close()


def round_trip(connection: socket.socket, payload: bytes = b"ping") -> float:
    started = time.monotonic()
    connection.sendall(payload)
    received = b""
    while len(received) < len(payload):
        received += connection.recv(4096)
    assert received == payload
    return time.monotonic() - started


def test_latency_is_added_to_each_round_trip_and_removed(proxy: Proxy) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as connection:
        assert round_trip(connection) < 0.1
        proxy.command(delay_ms=100)
        assert 0.2 <= round_trip(connection) < 0.6
        proxy.command(delay_ms=0)
        assert round_trip(connection) < 0.1


def test_a_blackhole_holds_everything_until_it_heals(proxy: Proxy) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as connection:
        assert round_trip(connection) < 0.1
        proxy.command(blackhole=True)
        connection.sendall(b"held")
        connection.settimeout(0.5)
        with pytest.raises(TimeoutError):
            connection.recv(4096)
        # A new connection is accepted, and carries nothing either.
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=0.5) as late:
            late.sendall(b"late")
            with pytest.raises(TimeoutError):
                late.recv(4096)
            proxy.command(blackhole=False)
            late.settimeout(5)
            assert late.recv(4096) == b"late"
        connection.settimeout(5)
        assert connection.recv(4096) == b"held"


def test_each_upstream_port_maps_to_its_client_port(proxy: Proxy) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as connection:
        round_trip(connection)
        ports = proxy.command(ports=True)["ports"]
        client_port = connection.getsockname()[1]
        assert list(ports.values()) == [client_port]
        assert proxy.client_port(int(next(iter(ports)))) == client_port
