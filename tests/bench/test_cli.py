"""`python -m bench` itself: arguments, and a clear stop when its tools are missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import missing_tools, parse_args
from bench.report import LATENCY_SCENARIOS, REFERENCE_SCENARIOS
from bench.runner import ALL_SCENARIOS, is_complete

ROOT = Path(__file__).resolve().parents[2]


def test_only_restricts_the_scenarios_and_rejects_unknown_ones() -> None:
    plan, _results, profile = parse_args(["--quick", "--only", "hot_book,floor_post"])
    assert plan.only == ("hot_book", "floor_post") and profile is None
    with pytest.raises(SystemExit):
        parse_args(["--only", "nope"])


def test_missing_load_generator_stops_at_once_with_the_install_command() -> None:
    # A child process in which locust cannot be found, whether or not it is installed here.
    hide = (
        "import importlib.util, runpy, sys; real = importlib.util.find_spec; "
        "importlib.util.find_spec = lambda n, *a: None if n == 'locust' else real(n, *a); "
        "sys.argv = ['bench', '--quick']; runpy.run_module('bench', run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-c", hide], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    # Whatever else this environment lacks (make test does not install the bench extra).
    missing, _, advice = result.stderr.partition(" not installed: ")
    assert "locust" in missing.split(", ") and "make bench" in advice


def test_missing_tools_names_what_cannot_be_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *args: None)
    assert missing_tools() == ["locust", "matplotlib"]


def test_every_run_measures_every_scenario_the_references_included() -> None:
    full, _results, _profile = parse_args([])
    quick, _results, _profile = parse_args(["--quick"])
    assert full.only == quick.only == ALL_SCENARIOS
    assert set(REFERENCE_SCENARIOS) | set(LATENCY_SCENARIOS) <= set(quick.only)
    assert quick.rounds == quick.latency_rounds == 1
    with pytest.raises(SystemExit):
        parse_args(["--references"])
    hot_only, _results, _profile = parse_args(["--quick", "--only", "hot_book"])
    # A run of every scenario writes latest.*; a partial, failed or interrupted one does not.
    assert is_complete(full, ALL_SCENARIOS) and is_complete(quick, ALL_SCENARIOS)
    assert not is_complete(hot_only, ["hot_book"])
    assert not is_complete(quick, [name for name in ALL_SCENARIOS if name != "hot_book_1ms"])
    assert not is_complete(full, ALL_SCENARIOS, interrupted=True)
