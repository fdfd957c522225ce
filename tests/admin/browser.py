"""What the admin's browser tests share: logging staff in, Playwright's `expect`, seats by
label, and screenshots for the README."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from resources.models import Resource
from tests.admin.conftest import PASSWORD


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def log_in(page: Any, username: str = "boss", password: str = PASSWORD) -> None:
    """Log in on the admin's login page; lands on the dashboard."""
    page.goto("/admin/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/admin/")


def seat(page: Any, label: str) -> Any:
    """A seat of a seat map (the customers', the staff booking's or the seat plan's)."""
    return page.locator(f'label.seat[data-seat-label="{label}"]')


def seat_ids(resource: Resource, *labels: str) -> list[int]:
    by_label = dict(resource.seats.values_list("label", "pk"))
    return [by_label[label] for label in labels]


def save_screenshot(page: Any, name: str, tmp_path: Path) -> None:
    """Into RESERVO_SCREENSHOT_DIR (docs/screenshots for the README), else a temporary one."""
    target = Path(os.environ.get("RESERVO_SCREENSHOT_DIR") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{name}.png"
    page.screenshot(path=str(path), full_page=True, animations="disabled")
    assert path.stat().st_size > 5000
