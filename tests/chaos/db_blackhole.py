"""A blackholed database for the chaos tests: packets to PostgreSQL vanish, sockets stay open.

A proxy that merely stops forwarding is no blackhole: the proxy's kernel still
acknowledges what the client sends and answers its keepalive probes, so the client's TCP
stack sees a healthy peer. Here the packets themselves are dropped, on the loopback
interface of a private network namespace, so the client's kernel gets no
acknowledgement, exactly as behind a partition or a dead host.

`python -m tests.chaos.db_blackhole` runs inside `unshare --net` (a namespace of its
own, gone with its processes): it forwards 127.0.0.1:5432 to a unix socket that leads to
the test database (`Relay`, started by the test), serves Reservo with gunicorn through
it, warms a database connection with one request, drops every packet to or from port
5432, books through the API, lifts the blackhole and books again with the same
Idempotency-Key. Each step is a JSON line on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent.parent
PROXY_PORT = 5432
HTTP_PORT = 8000
BASE_URL = f"http://127.0.0.1:{HTTP_PORT}"
IDEMPOTENCY_KEY = "blackhole-1"
# What a blackholed request is allowed before the harness itself gives up on it.
CLIENT_TIMEOUT_S = 120

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


# Forwarding -----------------------------------------------------------------------------


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


class Relay:
    """Forwards every connection accepted by `listen` to a new one made by `connect`, on an
    event loop of its own in a daemon thread."""

    def __init__(
        self,
        listen: Callable[[Callable[..., Awaitable[None]]], Coroutine[Any, Any, asyncio.Server]],
        connect: Callable[[], Awaitable[Streams]],
    ) -> None:
        self._listen = listen
        self._connect = connect
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await self._connect()
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        except asyncio.CancelledError:
            # Stopped with the relay: a connection still open is simply closed.
            writer.close()
            upstream_writer.close()

    def start(self) -> Relay:
        self._thread.start()
        listening = asyncio.run_coroutine_threadsafe(self._listen(self._handle), self._loop)
        self._server = listening.result(10)
        return self

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def unix_relay(path: str, *, host: str, port: int) -> Relay:
    """A unix socket at `path` leading to PostgreSQL at `host` (a socket directory or a
    host name) and `port`."""

    def connect() -> Awaitable[Streams]:
        if host.startswith("/"):
            return asyncio.open_unix_connection(f"{host}/.s.PGSQL.{port}")
        return asyncio.open_connection(host, port)

    return Relay(lambda handle: asyncio.start_unix_server(handle, path), connect)


# The harness, inside its network namespace ----------------------------------------------


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def run(*command: str) -> None:
    subprocess.run(command, check=True, stdout=sys.stderr, stderr=sys.stderr)


def blackhole_on() -> None:
    """Every packet to or from the proxy's port, in either direction, is dropped on arrival
    (redirected to a veth left down); the sender's kernel sees them leave, and nothing back."""
    run("ip", "link", "add", "bh0", "type", "veth", "peer", "name", "bh1")
    run("tc", "qdisc", "add", "dev", "lo", "ingress")
    for direction in ("dport", "sport"):
        run(
            *("tc", "filter", "add", "dev", "lo", "parent", "ffff:", "protocol", "ip"),
            *("u32", "match", "ip", direction, str(PROXY_PORT), "0xffff"),
            *("action", "mirred", "egress", "redirect", "dev", "bh0"),
        )


def blackhole_off() -> None:
    run("tc", "qdisc", "del", "dev", "lo", "ingress")


def request(method: str, path: str, key: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """The answer to one request: status, headers, body and how long it took, or the error
    that ended it without an answer."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}
    if method == "POST":
        headers["Idempotency-Key"] = IDEMPOTENCY_KEY
    call = urllib.request.Request(BASE_URL + path, data=data, headers=headers, method=method)  # noqa: S310 (loopback)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(call, timeout=CLIENT_TIMEOUT_S) as reply:  # noqa: S310
            status, reply_headers, content = reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as error:
        status, reply_headers, content = error.code, dict(error.headers), error.read()
    except OSError as error:
        return {"error": repr(error), "elapsed": time.monotonic() - started}
    return {
        "status": status,
        "headers": reply_headers,
        "body": content.decode(errors="replace"),
        "elapsed": time.monotonic() - started,
    }


def wait_for_server(server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with {server.returncode}")
        try:
            with urllib.request.urlopen(BASE_URL + "/healthz", timeout=1):  # noqa: S310
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("gunicorn did not start")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", required=True, help="unix socket leading to the database")
    parser.add_argument("--resource", type=int, required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()

    run("ip", "link", "set", "lo", "up")
    upstream = args.upstream
    Relay(
        lambda handle: asyncio.start_server(handle, "127.0.0.1", PROXY_PORT),
        lambda: asyncio.open_unix_connection(upstream),
    ).start()
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(HTTP_PORT),
        "RESERVO_WEB_WORKERS": "1",
    }
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    server = subprocess.Popen(
        [gunicorn, "-c", "reservo/gunicorn_conf.py", "reservo.wsgi:application"],
        cwd=BASE_DIR,
        env=env,
        stdout=sys.stderr,
        stderr=sys.stderr,
    )
    try:
        wait_for_server(server)
        # The worker's persistent connection, healthy, as between two requests.
        emit("warm", **request("GET", f"/api/v1/resources/{args.resource}/", args.key))
        blackhole_on()
        emit("blackhole")
        booking = {"resource": args.resource, "quantity": 1}
        emit("answer", **request("POST", "/api/v1/reservations/", args.key, booking))
        blackhole_off()
        emit("retry", **request("POST", "/api/v1/reservations/", args.key, booking))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)


if __name__ == "__main__":
    main()
