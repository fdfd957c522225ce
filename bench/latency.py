"""A proxy that delays every chunk it forwards, either way: latency between app and database.

`python -m bench.latency --listen ADDRESS --target ADDRESS --delay-ms 1` listens on the
first address and forwards each connection to the second (each `host:port`, or the path
of a Unix socket), holding each chunk read from either side for `delay-ms` before
writing it on: a round trip through the proxy gains twice the delay, plus the event
loop's timer granularity (about a millisecond). Chunks keep their order; the delay does
not limit throughput (a chunk read while the previous one waits is timed from its own
arrival). It prints "ready" once it listens, and runs until it is terminated.

In front of a PostgreSQL reached through a Unix socket, the proxy listens beside it, in
the same directory under another port number (`delayed_endpoint`): the app's database
URL then differs from the direct one by its port alone, so the settings treat both
alike (the embedded database, for one, is known by its socket directory).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

CHUNK_BYTES = 65536


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float) -> None:
    """Copy `reader` to `writer`, each chunk written `delay_s` after it was read."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def read() -> None:
        try:
            while chunk := await reader.read(CHUNK_BYTES):
                queue.put_nowait((loop.time() + delay_s, chunk))
        except OSError:
            pass
        finally:  # the end of the stream, however it came, after what was read before it
            queue.put_nowait((loop.time() + delay_s, b""))

    reading = asyncio.create_task(read())
    try:
        while True:
            due, chunk = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not chunk:
                break
            writer.write(chunk)
            await writer.drain()
    finally:
        reading.cancel()
        writer.close()


async def _open_target(target: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if target.startswith("/"):
        return await asyncio.open_unix_connection(target)
    host, _, port = target.rpartition(":")
    return await asyncio.open_connection(host.strip("[]"), int(port))


async def serve(listen: str, target: str, delay_s: float) -> None:
    async def connection(
        client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        try:
            server_reader, server_writer = await _open_target(target)
        except OSError:
            client_writer.close()
            return
        # Cancelled: the proxy is stopping, and every connection with it.
        with contextlib.suppress(OSError, asyncio.CancelledError):
            await asyncio.gather(
                _pump(client_reader, server_writer, delay_s),
                _pump(server_reader, client_writer, delay_s),
            )

    if listen.startswith("/"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(listen)  # left by a proxy that was killed
        server = await asyncio.start_unix_server(connection, listen)
    else:
        host, _, port = listen.rpartition(":")
        server = await asyncio.start_server(connection, host.strip("[]"), int(port))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print("ready", flush=True)
    try:
        async with server:
            await stop.wait()
    finally:
        if listen.startswith("/"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(listen)


def postgres_address(database_url: str) -> str:
    """Where a PostgreSQL URL connects: `host:port`, or its Unix socket's path."""
    parts = urlsplit(database_url)
    query = dict(parse_qsl(parts.query))
    host = query.get("host") or unquote(parts.hostname or "") or "/var/run/postgresql"
    port = query.get("port") or (str(parts.port) if parts.port else "5432")
    if host.startswith("/"):
        return f"{host}/.s.PGSQL.{port}"
    return f"{host}:{port}"


def delayed_endpoint(database_url: str, port: int) -> tuple[str, str]:
    """Where a proxy in front of `database_url`'s server listens, and the URL that reaches
    the same database through it: beside a Unix socket, in its directory under port
    `port`; in front of a TCP address, on 127.0.0.1:`port`."""
    target = postgres_address(database_url)
    parts = urlsplit(database_url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("host", "port")]
    credentials = parts.netloc.rpartition("@")[0]
    credentials += "@" if credentials else ""
    if target.startswith("/"):
        directory = target.rpartition("/")[0]
        query += [("host", directory), ("port", str(port))]
        url = urlunsplit(parts._replace(netloc=credentials, query=urlencode(query, safe="/")))
        return f"{directory}/.s.PGSQL.{port}", url
    url = urlunsplit(
        parts._replace(netloc=f"{credentials}127.0.0.1:{port}", query=urlencode(query))
    )
    return f"127.0.0.1:{port}", url


def round_trip_ms(database_url: str, trips: int = 200) -> float:
    """The median time of a `SELECT 1` on one connection to `database_url`, in ms."""
    import time

    import psycopg

    times = []
    with psycopg.connect(database_url, autocommit=True) as connection:
        for _ in range(trips):
            started = time.perf_counter()
            connection.execute("SELECT 1").fetchone()
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return round(times[len(times) // 2], 3)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__)
    parser.add_argument("--listen", required=True, help="host:port, or a Unix socket's path")
    parser.add_argument("--target", required=True, help="host:port, or a Unix socket's path")
    parser.add_argument("--delay-ms", type=float, default=1.0)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.listen, args.target, args.delay_ms / 1000))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
