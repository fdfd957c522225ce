"""`manage.py check --deploy` warns about a server that routes the benchmark's views."""

from __future__ import annotations

from django.core.checks import run_checks
from django.test import override_settings


def _deploy_check_ids() -> set[str]:
    return {message.id for message in run_checks(include_deployment_checks=True) if message.id}


def test_deploy_check_warns_when_the_bench_views_are_routed() -> None:
    assert "reservo.W001" not in _deploy_check_ids()
    with override_settings(RESERVO_BENCH_FLOOR=True):
        assert "reservo.W001" in _deploy_check_ids()
    # Only the deployment checks: `make bench` runs its server with the views routed.
    with override_settings(RESERVO_BENCH_FLOOR=True):
        assert "reservo.W001" not in {m.id for m in run_checks() if m.id}
