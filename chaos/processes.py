"""What the nemesis needs to know about processes on this machine, read from /proc: the
children of a process, and which process owns a TCP connection (by its local port)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROC = Path("/proc")
TCP_ESTABLISHED = "01"
TCP_LISTEN = "0A"


@dataclass(frozen=True)
class TcpSocket:
    local_port: int
    remote_port: int
    state: str


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name, in parentheses, may contain spaces: fields follow the last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def tcp_sockets() -> dict[int, TcpSocket]:
    """Every TCP socket of the machine (IPv4 and IPv6), by inode."""
    sockets = {}
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
            sockets[inode] = TcpSocket(
                local_port=int(local.rsplit(":", 1)[1], 16),
                remote_port=int(remote.rsplit(":", 1)[1], 16),
                state=state,
            )
    return sockets


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets process `pid` has open."""
    inodes: set[int] = set()
    try:
        descriptors = list((PROC / str(pid) / "fd").iterdir())
    except OSError:
        return inodes
    for descriptor in descriptors:
        try:
            target = os.readlink(descriptor)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def connections_of(pid: int, sockets: dict[int, TcpSocket] | None = None) -> list[TcpSocket]:
    sockets = tcp_sockets() if sockets is None else sockets
    return [sockets[inode] for inode in socket_inodes(pid) if inode in sockets]


def owner_of_port(pids: list[int], local_port: int) -> int | None:
    """Which of `pids` owns the TCP connection whose local port is `local_port`."""
    sockets = tcp_sockets()
    for pid in pids:
        if any(c.local_port == local_port for c in connections_of(pid, sockets)):
            return pid
    return None


def serving(pids: list[int], listen_port: int) -> list[int]:
    """Those of `pids` (web workers) holding an accepted connection on `listen_port`: in
    the middle of a request."""
    sockets = tcp_sockets()
    return [
        pid
        for pid in pids
        if any(
            c.local_port == listen_port and c.state == TCP_ESTABLISHED
            for c in connections_of(pid, sockets)
        )
    ]


def signal_group(process: subprocess.Popen[Any], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def stop_group(process: subprocess.Popen[Any], grace_s: float = 15) -> None:
    """SIGTERM the process's group (SIGCONT first: a stopped process cannot exit), then
    SIGKILL what is left after `grace_s`."""
    if process.poll() is None:
        signal_group(process, signal.SIGCONT)
        signal_group(process, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace_s)
    # Whatever the leader left behind in its group (workers outliving a killed master).
    signal_group(process, signal.SIGKILL)
    if process.poll() is None:
        process.wait(timeout=10)


def wait_for(condition: Any, timeout: float, what: str, interval: float = 0.05) -> float:
    """Poll `condition` until true; raise TimeoutError naming `what`. Returns the time taken."""
    start = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
