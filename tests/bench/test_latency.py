"""The delay between app and database: where the proxy listens, and what it adds."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from bench.latency import delayed_endpoint, postgres_address, round_trip_ms
from bench.server import DelayProxy
from reservo import embedded


def test_beside_a_unix_socket_the_url_differs_by_its_port_alone() -> None:
    url = "postgres://postgres@/reservo_bench?host=%2Fdata%2Frun&sslmode=disable"
    assert postgres_address(url) == "/data/run/.s.PGSQL.5432"
    listen, delayed = delayed_endpoint(url, 40123)
    assert listen == "/data/run/.s.PGSQL.40123"
    assert delayed == "postgres://postgres@/reservo_bench?sslmode=disable&host=/data/run&port=40123"
    assert postgres_address(delayed) == listen
    # The settings know the embedded database by its socket directory, the port aside.
    socket_dir = postgres_address(embedded.postgres_url()).rpartition("/")[0]
    _, delayed_embedded = delayed_endpoint(embedded.postgres_url(), 40123)
    assert embedded.is_embedded_database_url(delayed_embedded)
    assert postgres_address(delayed_embedded) == f"{socket_dir}/.s.PGSQL.40123"


def test_in_front_of_tcp_the_proxy_listens_on_the_loopback() -> None:
    url = "postgres://app:s%40cret@db.example.com:6432/reservo?sslmode=require"
    assert postgres_address(url) == "db.example.com:6432"
    listen, delayed = delayed_endpoint(url, 40123)
    assert listen == "127.0.0.1:40123"
    assert delayed == "postgres://app:s%40cret@127.0.0.1:40123/reservo?sslmode=require"


def test_the_proxy_adds_its_delay_to_every_round_trip(tmp_path: Path) -> None:
    database_url = os.environ.get("DATABASE_URL") or embedded.postgres_url()
    try:
        direct = round_trip_ms(database_url, trips=20)
    except psycopg.OperationalError:
        pytest.skip("no PostgreSQL to stand in front of")
    proxy = DelayProxy(database_url, 1.0, tmp_path / "proxy.log")
    proxy.start()
    try:
        delayed = round_trip_ms(proxy.url, trips=20)
        with psycopg.connect(proxy.url, autocommit=True) as connection:
            row = connection.execute("SELECT repeat('x', 200000)").fetchone()
    finally:
        proxy.stop()
    assert delayed >= direct + 2.0  # 1 ms each way, at least
    assert row is not None and len(row[0]) == 200000  # many chunks, in order
    assert proxy.process is not None and proxy.process.returncode == 0
    assert not proxy.listen.startswith("/") or not Path(proxy.listen).exists()
