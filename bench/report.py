"""Figures from raw samples, the ratios against the references, and the report files.

Pure Python (no numpy), so the smoke tests run without the bench extras; only the plot
imports matplotlib.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAIN, BACKGROUND = "main", "background"
# The bench-only references (bench/floor.py, bench/reference.py, bench/booking.sql),
# measured in every run: what Reservo's own scenarios are compared with.
FLOOR_SCENARIOS = ("floor_post", "floor_get")
REFERENCE_BOOKINGS = ("naive_book", "bare_book")
REFERENCE_SCENARIOS = (*FLOOR_SCENARIOS, "pgbench_book", *REFERENCE_BOOKINGS)
# The same bookings with a delay added between the app and PostgreSQL (bench/latency.py).
LATENCY_SUFFIX = "_1ms"
LATENCY_SCENARIOS = tuple(
    f"{name}{LATENCY_SUFFIX}" for name in ("naive_book", "bare_book", "hot_book")
)
SCENARIO_ORDER = (
    *REFERENCE_SCENARIOS,
    "hot_book",
    "spread_book",
    "availability_get",
    *LATENCY_SCENARIOS,
    "growth",
)
# Every scenario that books through HTTP: each round is checked for oversold places.
HTTP_BOOKING_SCENARIOS = (
    *REFERENCE_BOOKINGS,
    "hot_book",
    "spread_book",
    *LATENCY_SCENARIOS,
    "growth",
)
# The statuses each scenario expects; anything else is counted as an error.
EXPECTED_STATUSES: dict[str, frozenset[str]] = {
    "floor_post": frozenset({"201"}),
    "floor_get": frozenset({"200"}),
    "pgbench_book": frozenset({"ok"}),
    **{name: frozenset({"201", "409:sold_out"}) for name in HTTP_BOOKING_SCENARIOS},
    "availability_get": frozenset({"200"}),
}
# ratio name: (numerator scenario, denominator scenario, target)
RATIOS: dict[str, tuple[str, str, float]] = {
    "hot_vs_naive": ("hot_book", "naive_book", 0.8),
    "bare_vs_naive": ("bare_book", "naive_book", 0.9),
    "spread_vs_hot": ("spread_book", "hot_book", 1.0),
    "availability_vs_floor": ("availability_get", "floor_get", 0.7),
    "growth_vs_hot": ("growth", "hot_book", 0.9),
}
# The same comparisons with the delay between app and database; no goal is set on these.
LATENCY_RATIOS: dict[str, tuple[str, str]] = {
    "hot_vs_naive_1ms": ("hot_book_1ms", "naive_book_1ms"),
    "bare_vs_naive_1ms": ("bare_book_1ms", "naive_book_1ms"),
}
P99_HOT_TARGET_MS = 300.0
# The CPU each part used (busy cores): app, database, load generator. The per-request
# table adds the whole machine's.
CPU_PART_KEYS = ("app_cpu_cores", "database_cpu_cores", "generator_cpu_cores")
CPU_PER_REQUEST_KEYS = (*CPU_PART_KEYS, "machine_busy_cores")
WORKER_RSS_TARGET_MB = 120.0


@dataclass(frozen=True)
class Sample:
    """One request: when it started (epoch s), how long it took (ms), how it ended."""

    start: float
    latency_ms: float
    status: str
    kind: str = MAIN


def parse_samples(lines: Iterable[str]) -> list[Sample]:
    samples = []
    for line in lines:
        parts = line.strip().split(",")
        if len(parts) == 4:
            samples.append(Sample(float(parts[0]), float(parts[1]), parts[2], parts[3]))
    return samples


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 when there are none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def window_seconds(samples: Sequence[Sample]) -> float:
    """From the first request sent to the last answer received."""
    if not samples:
        return 0.0
    first = min(s.start for s in samples)
    last = max(s.start + s.latency_ms / 1000 for s in samples)
    return max(last - first, 1e-9)


@dataclass
class RoundFigures:
    """One run of one scenario: its samples (main kind only) and the measured window."""

    samples: list[Sample]
    seconds: float

    @classmethod
    def of(cls, samples: Sequence[Sample]) -> RoundFigures:
        main = [s for s in samples if s.kind == MAIN]
        return cls(main, window_seconds(main))

    @property
    def rps(self) -> float:
        return len(self.samples) / self.seconds if self.seconds else 0.0


def summarize(scenario: str, rounds: Sequence[RoundFigures]) -> dict[str, Any]:
    """requests/s over every round's window, latency percentiles over every sample."""
    samples = [s for r in rounds for s in r.samples]
    seconds = sum(r.seconds for r in rounds)
    latencies = sorted(s.latency_ms for s in samples)
    statuses = Counter(s.status for s in samples)
    expected = EXPECTED_STATUSES.get(scenario, frozenset())
    errors: Counter[str] = Counter()
    for label, count in statuses.items():
        if label not in expected:
            errors[label.split(":", 1)[0]] += count
    return {
        "requests": len(samples),
        "seconds": round(seconds, 3),
        "rps": round(len(samples) / seconds, 1) if seconds else 0.0,
        "rounds_rps": [round(r.rps, 1) for r in rounds],
        "p50_ms": round(percentile(latencies, 0.50), 2),
        "p95_ms": round(percentile(latencies, 0.95), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(latencies[-1], 2) if latencies else 0.0,
        "statuses": dict(sorted(statuses.items())),
        "errors": dict(sorted(errors.items())),
        "server_errors": sum(n for status, n in errors.items() if status.startswith("5")),
    }


def ratios(
    scenarios: Mapping[str, Mapping[str, Any]],
    pairs: Mapping[str, tuple[str, str] | tuple[str, str, float]] = RATIOS,
) -> dict[str, float | None]:
    """Each named ratio of two scenarios' req/s (None when either was not measured)."""
    result: dict[str, float | None] = {}
    for name, (numerator, denominator, *_target) in pairs.items():
        top = scenarios.get(numerator, {}).get("rps")
        bottom = scenarios.get(denominator, {}).get("rps")
        result[name] = round(top / bottom, 3) if top and bottom else None
    return result


def targets(results: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each goal of the issue with the measured value and whether it is met (None: not run)."""
    scenarios = results.get("scenarios", {})
    measured_ratios = results.get("ratios", {})
    goals: dict[str, dict[str, Any]] = {}
    for name, (_n, _d, target) in RATIOS.items():
        value = measured_ratios.get(name)
        goals[name] = {"target": f">= {target}", "value": value, "met": _met(value, target, True)}
    hot = scenarios.get("hot_book")
    p99 = hot.get("p99_ms") if hot else None
    goals["hot_book_p99_ms"] = {
        "target": f"<= {P99_HOT_TARGET_MS:g}",
        "value": p99,
        "met": _met(p99, P99_HOT_TARGET_MS, False),
    }
    # Every checked round counts: the references' and the delayed ones' as well.
    checked = [s for s in scenarios.values() if "oversold" in s]
    oversold = sum(s["oversold"] for s in checked) if checked else None
    goals["oversold"] = {"target": "0", "value": oversold, "met": _met(oversold, 0, False)}
    server_errors = (
        sum(s.get("server_errors", 0) for s in scenarios.values()) if scenarios else None
    )
    goals["5xx"] = {"target": "0", "value": server_errors, "met": _met(server_errors, 0, False)}
    rss = results.get("worker_rss_mb_max")
    goals["worker_rss_mb_max"] = {
        "target": f"<= {WORKER_RSS_TARGET_MB:g}",
        "value": rss,
        "met": _met(rss, WORKER_RSS_TARGET_MB, False),
    }
    return goals


def _met(value: float | None, bound: float, at_least: bool) -> bool | None:
    if value is None:
        return None
    return value >= bound if at_least else value <= bound


# Files ------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if value >= 100 else f"{value:.2f}"
    return str(value)


def markdown(results: Mapping[str, Any]) -> str:
    scenarios = results.get("scenarios", {})
    names = [n for n in SCENARIO_ORDER if n in scenarios] + sorted(
        set(scenarios) - set(SCENARIO_ORDER)
    )
    lines = [
        "| scenario | req/s | by round | p50 ms | p95 ms | p99 ms | requests | errors | "
        "oversold | app CPU | database CPU | load gen CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for name in names:
        s = scenarios[name]
        errors = ", ".join(f"{k}: {v}" for k, v in s.get("errors", {}).items()) or "0"
        lines.append(
            f"| {name} | {_cell(s.get('rps'))} | {_by_round(s.get('rounds_rps'))} | "
            f"{_cell(s.get('p50_ms'))} | "
            f"{_cell(s.get('p95_ms'))} | {_cell(s.get('p99_ms'))} | {s.get('requests', 0)} | "
            f"{errors} | {_cell(s.get('oversold', '') if name != 'floor_post' else '')} | "
            f"{' | '.join(_cores(s.get(key)) for key in CPU_PART_KEYS)} |"
        )
    lines += [
        "",
        "CPU per request, ms (each part's busy cores / req/s; the machine's includes Redis "
        "and the kernel):",
        "",
        "| scenario | app | database | load gen | machine |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in names:
        s = scenarios[name]
        cells = (_per_request(s.get(key), s.get("rps")) for key in CPU_PER_REQUEST_KEYS)
        lines.append(f"| {name} | {' | '.join(cells)} |")
    lines += ["", "| goal | target | measured | met |", "|---|---|---:|:---:|"]
    for name, goal in results.get("targets", {}).items():
        met = {True: "yes", False: "**no**", None: "-"}[goal["met"]]
        lines.append(f"| {name} | {goal['target']} | {_cell(goal['value'])} | {met} |")
    lines += _latency_lines(results)
    lines += _lock_lines(results.get("lock_round_trips", {}))
    machine = results.get("machine", {})
    server = results.get("server", {})
    load = results.get("load_generator", {})
    lines += [
        "",
        f"Machine: {machine.get('cores', '?')} cores ({machine.get('cpu_model', '?')}), "
        f"{machine.get('ram_gb', '?')} GB RAM, PostgreSQL {machine.get('postgres', '?')}, "
        f"Python {machine.get('python', '?')}. Server: gunicorn {server.get('worker_class', '?')} "
        f"{server.get('workers', '?')} workers x {server.get('threads', '?')} threads. "
        f"Load: {load.get('tool', '?')}, {load.get('clients', '?')} clients in "
        f"{load.get('processes', '?')} process(es). Worker RSS max "
        f"{_cell(results.get('worker_rss_mb_max'))} MB. "
        f"{'Quick run' if results.get('quick') else 'Full run'}, "
        f"{results.get('rounds', '?')} round(s), {_cell(results.get('duration_s'))} s.",
    ]
    return "\n".join(lines) + "\n"


def _latency_lines(results: Mapping[str, Any]) -> list[str]:
    """The delayed bookings against each other, with the round trip the delay made."""
    measured = {name: value for name, value in results.get("latency_ratios", {}).items() if value}
    if not measured:
        return []
    delay = results.get("notes", {}).get("db_latency", {})
    trip = ""
    if delay.get("round_trip_ms_direct") is not None:
        trip = (
            f" (a `SELECT 1` round trip: {delay['round_trip_ms_direct']:.2f} ms direct, "
            f"{delay['round_trip_ms_proxied']:.2f} ms through the delay)"
        )
    ratios_text = ", ".join(f"{name} {value:.2f}" for name, value in measured.items())
    return [
        "",
        f"With {_cell(delay.get('delay_ms_each_way', 1.0))} ms added each way between the "
        f"app and PostgreSQL{trip}: {ratios_text} (no goal).",
    ]


def _lock_lines(counts: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """How many round trips each booking path holds the resource row lock for."""
    known = [
        f"{name} {figures['lock_round_trips']}"
        for name, figures in counts.items()
        if figures.get("lock_round_trips") is not None
    ]
    if not known:
        return []
    return [
        "",
        "Round trips to PostgreSQL under the resource row lock, from the locking statement's "
        f"answer to the COMMIT (one booking, counted in this run): {', '.join(known)}.",
    ]


def _by_round(values: Sequence[float] | None) -> str:
    """Each round's req/s: a first round unlike the others shows (cold caches, plans)."""
    return " / ".join(f"{value:,.0f}" for value in values) if values else "-"


def _per_request(cores: float | None, rps: float | None) -> str:
    return "-" if cores is None or not rps else f"{1000 * cores / rps:.2f}"


def _cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def write_json(results: Mapping[str, Any], path: Path) -> None:
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")


def plot(results: Mapping[str, Any], path: Path) -> None:
    """Throughput and p99 per scenario side by side, the ratios written on the chart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = results.get("scenarios", {})
    names = [n for n in SCENARIO_ORDER if n in scenarios]
    rps = [scenarios[n].get("rps", 0.0) for n in names]
    p99 = [scenarios[n].get("p99_ms", 0.0) for n in names]
    colours = [_colour(n) for n in names]

    figure, (left, right) = plt.subplots(1, 2, figsize=(14, 5.2))
    bars = left.bar(names, rps, color=colours)
    left.bar_label(bars, labels=[f"{v:,.0f}" for v in rps], fontsize=8)
    left.set_title("Throughput (requests or transactions per second)")
    left.set_ylabel("per second")
    bars = right.bar(names, p99, color=colours)
    right.bar_label(bars, labels=[f"{v:.0f}" for v in p99], fontsize=8)
    right.axhline(P99_HOT_TARGET_MS, color="#c53030", linestyle="--", linewidth=1)
    right.set_title("p99 latency (ms); dashed: hot_book goal")
    right.set_ylabel("ms")
    for axis in (left, right):
        axis.tick_params(axis="x", rotation=30, labelsize=8)
    ratio_text = "   ".join(
        f"{name} {value:.2f} (goal {RATIOS[name][2]:g})"
        for name, value in results.get("ratios", {}).items()
        if value is not None
    )
    machine = results.get("machine", {})
    figure.suptitle(
        f"Reservo sale-opening rush: {machine.get('cores', '?')} cores, "
        f"{machine.get('ram_gb', '?')} GB; grey = floors (framework, database), "
        "amber = reference bookings (bench-only views); _1ms: 1 ms added each way to the database",
        fontsize=10,
    )
    figure.text(0.5, 0.01, ratio_text, ha="center", fontsize=8)
    figure.tight_layout(rect=(0, 0.05, 1, 0.95))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _colour(scenario: str) -> str:
    """Grey for the floors and pgbench, amber for the reference bookings, blue for Reservo's
    own; lighter for the bookings with the delay to the database."""
    base = scenario.removesuffix(LATENCY_SUFFIX)
    delayed = base != scenario
    if base in (*FLOOR_SCENARIOS, "pgbench_book"):
        return "#9aa5b1"
    if base in REFERENCE_BOOKINGS:
        return "#f0c674" if delayed else "#d69e2e"
    return "#90b4e0" if delayed else "#2b6cb0"


def write_all(results: dict[str, Any], directory: Path) -> str:
    """latest.json, latest.md and latest.png in `directory`; returns the Markdown table."""
    directory.mkdir(parents=True, exist_ok=True)
    results["ratios"] = ratios(results.get("scenarios", {}))
    results["latency_ratios"] = ratios(results.get("scenarios", {}), LATENCY_RATIOS)
    results["targets"] = targets(results)
    table = markdown(results)
    write_json(results, directory / "latest.json")
    (directory / "latest.md").write_text("# Latest benchmark\n\n" + table)
    plot(results, directory / "latest.png")
    return table
