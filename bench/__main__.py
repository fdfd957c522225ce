"""`python -m bench [--quick] [--only a,b] [--profile scenario]`: see bench/README.md."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

from bench.runner import ALL_SCENARIOS, Plan, main


def parse_args(argv: list[str]) -> tuple[Plan, Path, str | None]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one short round of each scenario")
    parser.add_argument(
        "--only",
        help=f"comma-separated scenarios to run, among: {', '.join(ALL_SCENARIOS)} "
        "(default: all; a run of fewer leaves bench/results/latest.* alone)",
    )
    parser.add_argument("--rounds", type=int, help="rounds of the alternating scenarios")
    parser.add_argument("--duration", type=float, help="seconds of each timed HTTP scenario")
    parser.add_argument("--processes", type=int, help="locust processes sharing the clients")
    parser.add_argument("--growth-rows", type=int, help="rows in the reservations table for growth")
    parser.add_argument("--profile", choices=ALL_SCENARIOS, help="py-spy the workers during it")
    parser.add_argument("--results", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    plan = Plan.quick_plan() if args.quick else Plan.full_plan()
    only = plan.only
    if args.only is not None:
        only = tuple(name.strip() for name in args.only.split(",") if name.strip())
    unknown = sorted(set(only) - set(ALL_SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    overrides = {
        "rounds": args.rounds,
        "duration_s": args.duration,
        "processes": args.processes,
        "growth_rows": args.growth_rows,
    }
    plan = replace(plan, only=only, **{k: v for k, v in overrides.items() if v is not None})
    return plan, args.results, args.profile


def missing_tools() -> list[str]:
    """The load generator and the plotting library, from the project's `bench` extra."""
    return [name for name in ("locust", "matplotlib") if importlib.util.find_spec(name) is None]


if __name__ == "__main__":
    plan, results, profile = parse_args(sys.argv[1:])
    if missing := missing_tools():
        sys.exit(
            f"{', '.join(missing)} not installed: run `make bench`, or first "
            '`pip install -e ".[bench]"` in this environment.'
        )
    sys.exit(main(plan, results, profile))
