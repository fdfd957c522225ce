"""The benchmark's figures, ratios and report, from made-up samples (no server, no load)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import report
from bench.profile import summarize_profiles
from bench.report import RoundFigures, Sample


def _samples(count: int, status: str = "201", latency_ms: float = 10.0) -> list[Sample]:
    # One request every 10 ms: `count` requests over count/100 seconds.
    return [Sample(1000.0 + i / 100, latency_ms, status) for i in range(count)]


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert report.percentile(values, 0.50) == 50.0
    assert report.percentile(values, 0.99) == 99.0
    assert report.percentile(values, 1.0) == 100.0
    assert report.percentile([], 0.5) == 0.0


def test_parse_samples_reads_what_the_locustfile_writes() -> None:
    lines = ["1000.5,12.250,201,main", "1000.6,3.000,409:sold_out,background", "garbage"]
    assert report.parse_samples(lines) == [
        Sample(1000.5, 12.25, "201", "main"),
        Sample(1000.6, 3.0, "409:sold_out", "background"),
    ]


def test_rounds_count_main_requests_only_over_their_window() -> None:
    background = [Sample(1000.0, 1.0, "201", report.BACKGROUND)] * 50
    figures = RoundFigures.of(_samples(100) + background)
    assert len(figures.samples) == 100
    # First sent at 1000.00, last answered at 1000.99 + 0.01.
    assert figures.seconds == pytest.approx(1.0)
    assert figures.rps == pytest.approx(100.0)


def test_summary_counts_unexpected_statuses_as_errors_by_status() -> None:
    samples = (
        _samples(90)
        + _samples(5, "409:sold_out")
        + _samples(3, "503:busy")
        + _samples(1, "409:idempotency_in_progress")
        + _samples(1, "0")
    )
    summary = report.summarize("hot_book", [RoundFigures.of(samples)])
    assert summary["requests"] == 100
    assert summary["errors"] == {"0": 1, "409": 1, "503": 3}
    assert summary["server_errors"] == 3
    assert summary["statuses"]["409:sold_out"] == 5
    assert summary["p50_ms"] == 10.0


def test_summary_pools_rounds() -> None:
    rounds = [RoundFigures.of(_samples(100, "200")), RoundFigures.of(_samples(300, "200"))]
    summary = report.summarize("floor_get", rounds)
    assert summary["requests"] == 400
    assert summary["rps"] == pytest.approx(100.0)
    assert summary["rounds_rps"] == [100.0, 100.0]
    assert summary["errors"] == {}


def test_ratios_and_goals() -> None:
    scenarios = {
        "floor_post": {"rps": 1000.0, "server_errors": 0},
        "floor_get": {"rps": 2000.0, "server_errors": 0},
        "pgbench_book": {"rps": 1600.0, "server_errors": 0},
        "naive_book": {"rps": 500.0, "oversold": 1, "server_errors": 0},
        "bare_book": {"rps": 440.0, "oversold": 0, "server_errors": 0},
        "hot_book": {"rps": 400.0, "p99_ms": 350.0, "oversold": 0, "server_errors": 0},
        "spread_book": {"rps": 420.0, "oversold": 0, "server_errors": 0},
        "availability_get": {"rps": 1500.0, "server_errors": 2},
    }
    ratios = report.ratios(scenarios)
    assert ratios == {
        "hot_vs_naive": 0.8,
        "bare_vs_naive": 0.88,
        "spread_vs_hot": 1.05,
        "availability_vs_floor": 0.75,
        "growth_vs_hot": None,
    }
    goals = report.targets({"scenarios": scenarios, "ratios": ratios, "worker_rss_mb_max": 90.0})
    assert goals["hot_vs_naive"] == {"target": ">= 0.8", "value": 0.8, "met": True}
    assert goals["bare_vs_naive"]["met"] is False
    assert goals["spread_vs_hot"]["met"] is True
    assert goals["growth_vs_hot"]["met"] is None
    assert goals["hot_book_p99_ms"] == {"target": "<= 300", "value": 350.0, "met": False}
    # A reference view that oversold counts as well.
    assert goals["oversold"] == {"target": "0", "value": 1, "met": False}
    assert goals["5xx"]["value"] == 2
    assert goals["5xx"]["met"] is False
    assert goals["worker_rss_mb_max"]["met"] is True


def test_markdown_table_lists_every_scenario_and_goal() -> None:
    results: dict[str, Any] = {
        "scenarios": {
            "hot_book": {
                "rps": 412.3,
                "rounds_rps": [352.5, 1430.0, 454.4],
                "p50_ms": 120.0,
                "p95_ms": 180.5,
                "p99_ms": 210.0,
                "requests": 4000,
                "errors": {"503": 2},
                "oversold": 0,
                "app_cpu_cores": 1.2,
                "database_cpu_cores": 0.3,
                "generator_cpu_cores": 0.4,
            },
            "floor_post": {"rps": 1500.0, "requests": 9000, "errors": {}},
        },
        "machine": {"cores": 2, "ram_gb": 23.5},
    }
    results["ratios"] = report.ratios(results["scenarios"])
    results["targets"] = report.targets(results)
    table = report.markdown(results)
    lines = table.splitlines()
    assert lines.index(next(line for line in lines if line.startswith("| floor_post"))) < (
        lines.index(next(line for line in lines if line.startswith("| hot_book")))
    )
    assert (
        "| hot_book | 412.3 | 352 / 1,430 / 454 | 120.0 | 180.5 | 210.0 | 4000 | 503: 2 | 0 "
        "| 1.20 | 0.30 | 0.40 |" in table
    )
    spread_vs_hot = next(line for line in lines if line.startswith("| spread_vs_hot"))
    assert spread_vs_hot == "| spread_vs_hot | >= 1.0 | - | - |"
    p99 = next(line for line in lines if line.startswith("| hot_book_p99_ms"))
    assert p99 == "| hot_book_p99_ms | <= 300 | 210.0 | yes |"
    assert "2 cores" in table


def test_markdown_gives_each_scenarios_cpu_per_request() -> None:
    results = {
        "scenarios": {
            "hot_book": {
                "rps": 400.0,
                "app_cpu_cores": 0.84,
                "database_cpu_cores": 0.3,
                "generator_cpu_cores": 0.26,
                "machine_busy_cores": 1.8,
            },
            "pgbench_book": {"rps": 1600.0, "database_cpu_cores": 1.0, "machine_busy_cores": 1.2},
        },
    }
    lines = report.markdown(results).splitlines()
    header = lines.index("| scenario | app | database | load gen | machine |")
    rows = lines[header:]
    assert "| hot_book | 2.10 | 0.75 | 0.65 | 4.50 |" in rows
    assert "| pgbench_book | - | 0.62 | - | 0.75 |" in rows


def test_profile_summary_attributes_time_to_frames_and_areas(tmp_path: Path) -> None:
    raw = tmp_path / "profile.txt"
    raw.write_text(
        "run (gunicorn/workers/sync.py:10);book (bookings/services.py:5) 30\n"
        "run (gunicorn/workers/sync.py:10);execute (psycopg/cursor.py:7) 70\n"
    )
    text = summarize_profiles([raw])
    assert text.startswith("100 samples")
    assert " 70.0%  psycopg" in text
    assert " 30.0%  reservo: bookings" in text
    assert "100.0%  run (gunicorn/workers/sync.py:10)" in text


def test_report_gives_the_delayed_ratios_and_the_round_trips_under_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenarios = {
        "naive_book": {"rps": 600.0},
        "hot_book": {"rps": 500.0},
        "naive_book_1ms": {"rps": 200.0},
        "bare_book_1ms": {"rps": 150.0},
        "hot_book_1ms": {"rps": 100.0},
    }
    # A refusal for sold out is expected of a reference view too; anything else is an error.
    summary = report.summarize(
        "naive_book_1ms", [RoundFigures.of(_samples(3, "201") + _samples(2, "409:sold_out"))]
    )
    assert summary["errors"] == {}
    results: dict[str, Any] = {
        "scenarios": scenarios,
        "notes": {
            "db_latency": {
                "delay_ms_each_way": 1.0,
                "round_trip_ms_direct": 0.05,
                "round_trip_ms_proxied": 2.31,
            }
        },
        "lock_round_trips": {
            "naive_book": {"lock_round_trips": 2},
            "bare_book": {"lock_round_trips": 4},
            "hot_book": {"lock_round_trips": None, "error": "RuntimeError"},
        },
    }
    monkeypatch.setattr(report, "plot", lambda _results, path: path.touch())  # no matplotlib
    table = report.write_all(results, tmp_path)
    assert results["latency_ratios"] == {"hot_vs_naive_1ms": 0.5, "bare_vs_naive_1ms": 0.75}
    assert results["ratios"]["hot_vs_naive"] == 0.833
    assert "hot_vs_naive_1ms" not in results["targets"]
    assert (
        "With 1.00 ms added each way between the app and PostgreSQL (a `SELECT 1` round trip: "
        "0.05 ms direct, 2.31 ms through the delay): hot_vs_naive_1ms 0.50, "
        "bare_vs_naive_1ms 0.75 (no goal)." in table
    )
    assert "(one booking, counted in this run): naive_book 2, bare_book 4." in table
    names = [line.split(" | ")[0] for line in table.splitlines() if line.startswith("| ")]
    assert names.index("| naive_book") < names.index("| hot_book") < names.index("| hot_book_1ms")
