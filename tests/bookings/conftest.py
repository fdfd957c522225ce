"""Fixtures for the webhook tests: the suite's receivers on loopback, a name resolver that
answers from a table, and a guard that lets no connection leave the machine."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def webhooks_to_loopback(settings: Any) -> None:
    """The suite's receivers listen on 127.0.0.1, where webhooks may only go with
    RESERVO_WEBHOOK_ALLOW_PRIVATE (a self-hosted receiver)."""
    settings.RESERVO_WEBHOOK_ALLOW_PRIVATE = True


def _answered_locally(name: str) -> bool:
    """`localhost` and addresses, in any notation the system accepts (`2130706433`,
    `0x7f.1`): the system resolver answers them without a query."""
    if name == "localhost":
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        try:
            socket.inet_aton(name)
        except OSError:
            return False
    return True


class Resolver:
    """Stands in for the system resolver: names in `table` resolve to their addresses,
    `localhost` and address literals as the system says (no query leaves the machine),
    any other name not at all. `lookups` lists the names asked for."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.table: dict[str, list[str]] = {"example.com": ["93.184.215.14"]}
        self.lookups: list[str] = []

    def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        self.lookups.append(name)
        if name in self.table:
            return [
                (
                    socket.AF_INET6 if ":" in address else socket.AF_INET,
                    socket.SOCK_STREAM,
                    socket.IPPROTO_TCP,
                    "",
                    (address, port, 0, 0) if ":" in address else (address, port),
                )
                for address in self.table[name]
            ]
        if not _answered_locally(name):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self._real(host, port, *args, **kwargs)


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Resolver:
    stub = Resolver(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", stub.getaddrinfo)
    return stub


class ConnectGuard:
    """Lets TCP connections to loopback through; any other is recorded in `refused` and
    fails as refused, without a packet sent."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.refused: list[Any] = []
        self.allowed: list[Any] = []

    def clear(self) -> None:
        self.refused.clear()
        self.allowed.clear()

    def connect(self, sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            if not ipaddress.ip_address(str(address[0]).split("%", 1)[0]).is_loopback:
                self.refused.append(address)
                raise ConnectionRefusedError(f"the test guard refused {address}")
            self.allowed.append(address)
        self._real(sock, address)


@pytest.fixture
def connect_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[ConnectGuard]:
    guard = ConnectGuard(socket.socket.connect)

    def connect(sock: socket.socket, address: Any) -> None:
        guard.connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    yield guard
