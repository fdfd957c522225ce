"""A TCP fault proxy between the app and its database: added latency, or a blackhole.

`python -m chaos.proxy --listen-port P --target HOST:PORT --control SOCKET` listens on
127.0.0.1:P and forwards every connection to the target. A JSON line sent to the control
Unix socket changes how it forwards, for every connection at once:

- `{"delay_ms": 100}`: each chunk, either way, is written 100 ms after it was read, so a
  round trip gains 200 ms; chunks keep their order.
- `{"blackhole": true}`: nothing is forwarded, either way, and new connections are
  accepted but carry nothing, as in a network partition; `{"blackhole": false}` heals it
  and what was held goes through (TCP retransmits after a partition heals).
- `{"ports": true}`: answers which client port each upstream connection carries
  (`{"ports": {"<upstream local port>": <client port>}}`), so that a database session
  seen through PgBouncer can be traced back to the app process that owns it.

Every command is answered with one JSON line. It prints "ready" once it listens, and runs
until it is terminated.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path

CHUNK_BYTES = 65536


class FaultProxy:
    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition(":")
        self.target_host = host.strip("[]")
        self.target_port = int(port)
        self.delay_s = 0.0
        self.passing = asyncio.Event()
        self.passing.set()
        # upstream local port -> client (app) port, for the connections open now
        self.ports: dict[int, int] = {}

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy `reader` to `writer`: each chunk waits its delay, and while the blackhole
        is on, for the blackhole to end."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def read() -> None:
            try:
                while chunk := await reader.read(CHUNK_BYTES):
                    queue.put_nowait((loop.time() + self.delay_s, chunk))
            except OSError:
                pass
            finally:
                queue.put_nowait((loop.time() + self.delay_s, b""))

        reading = asyncio.create_task(read())
        try:
            while True:
                due, chunk = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                await self.passing.wait()
                if not chunk:
                    break
                writer.write(chunk)
                await writer.drain()
        finally:
            reading.cancel()
            writer.close()

    async def connection(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(
                self.target_host, self.target_port
            )
        except OSError:
            client_writer.close()
            return
        upstream_port = server_writer.get_extra_info("sockname")[1]
        self.ports[upstream_port] = client_writer.get_extra_info("peername")[1]
        try:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await asyncio.gather(
                    self._pump(client_reader, server_writer),
                    self._pump(server_reader, client_writer),
                )
        finally:
            self.ports.pop(upstream_port, None)

    async def control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ValueError):
            while line := await reader.readline():
                command = json.loads(line)
                answer: dict[str, object] = {"ok": True}
                if "delay_ms" in command:
                    self.delay_s = float(command["delay_ms"]) / 1000
                if "blackhole" in command:
                    if command["blackhole"]:
                        self.passing.clear()
                    else:
                        self.passing.set()
                if command.get("ports"):
                    answer["ports"] = {str(k): v for k, v in self.ports.items()}
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        writer.close()


async def serve(listen_port: int, target: str, control_path: str) -> None:
    proxy = FaultProxy(target)
    server = await asyncio.start_server(proxy.connection, "127.0.0.1", listen_port)
    Path(control_path).unlink(missing_ok=True)
    control = await asyncio.start_unix_server(proxy.control, control_path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print("ready", flush=True)
    async with server, control:
        await stop.wait()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos.proxy", description=__doc__)
    parser.add_argument("--listen-port", type=int, required=True)
    parser.add_argument("--target", required=True, help="host:port")
    parser.add_argument("--control", required=True, help="path of the control Unix socket")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.listen_port, args.target, args.control))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
