"""Big seat maps in a real headless Chromium, on a phone and on a desktop: every seat whole
and touch-sized, the map one tab stop moved through with the arrow keys, a link to skip
it, and each seat named for a screen reader."""

from __future__ import annotations

import os
import re
import string
from pathlib import Path
from typing import Any

import pytest

from bookings.services import Actor, reservation_book
from tests.factories import SeatedResourceFactory
from tests.web.test_browser import NO_HORIZONTAL_SCROLL, expect, seat, seat_id

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CUSTOMER = Actor("customer")
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 800}
VIEWPORTS = pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["360px", "1280px"])
TOUCH_TARGET_PX = 32
# Rows A to Z, then ZA to ZN (named to sort after Z): forty rows, the widest labels last.
FORTY_ROWS = list(string.ascii_uppercase) + [f"Z{letter}" for letter in "ABCDEFGHIJKLMN"]
LIVE_DEADLINE_MS = 3000


def save_screenshot(page: Any, name: str, tmp_path: Path) -> None:
    """Into RESERVO_SCREENSHOT_DIR (docs/screenshots for the README), else a temporary one."""
    target = Path(os.environ.get("RESERVO_SCREENSHOT_DIR") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{name}.png"
    page.screenshot(path=str(path), full_page=True, animations="disabled")
    assert path.stat().st_size > 5000


def book(resource: Any, *labels: str, hold: bool = False) -> None:
    seat_ids = [seat_id(resource, label) for label in labels]
    reservation_book(resource_id=resource.pk, actor=CUSTOMER, seat_ids=seat_ids, hold=hold)


def tab_stops(seat_map: Any) -> int:
    return int(seat_map.locator('.seat-input:not([tabindex="-1"])').count())


def focused_seat(page: Any) -> str:
    return str(
        page.evaluate(
            "() => { const input = document.activeElement;"
            " return input.matches('.seat-input') ? input.nextElementSibling.dataset.seatLabel"
            " : input.id || input.tagName; }"
        )
    )


# Every seat measured: its box, and its label's glyphs inside it. The first, middle and last
# seats of each row are also scrolled into view, then must be in the map's box, clear of the
# sticky row name, and on top where they are drawn.
SEATS_WHOLE_AND_TOUCH_SIZED = """([minimum]) => {
  const map = document.querySelector("[data-seat-map]");
  const problems = [];
  const border = 2;
  const inside = (inner, outer, margin) => inner.left >= outer.left + margin
    && inner.right <= outer.right - margin && inner.top >= outer.top + margin
    && inner.bottom <= outer.bottom - margin;
  const glyphsOf = (seat) => {
    const range = document.createRange();
    range.selectNodeContents(seat.querySelector(".seat__name"));
    return range.getBoundingClientRect();
  };
  for (const seat of map.querySelectorAll("label.seat")) {
    const label = seat.dataset.seatLabel;
    const box = seat.getBoundingClientRect();
    const name = seat.querySelector(".seat__name").textContent;
    if (name !== label) problems.push(label + ": reads " + name);
    if (box.width < minimum || box.height < minimum)
      problems.push(label + ": " + box.width + "x" + box.height + " px");
    if (!inside(glyphsOf(seat), box, border)) problems.push(label + ": label cut by its seat");
  }
  for (const row of map.querySelectorAll(".seat-row")) {
    const seats = row.querySelectorAll("label.seat");
    const rowName = row.querySelector(".seat-row__label");
    for (const seat of [seats[0], seats[seats.length >> 1], seats[seats.length - 1]]) {
      const label = seat.dataset.seatLabel;
      seat.scrollIntoView({ block: "center", inline: "center" });
      const glyphs = glyphsOf(seat);
      const view = map.getBoundingClientRect();
      if (!inside(glyphs, view, 0) || glyphs.left < rowName.getBoundingClientRect().right)
        problems.push(label + ": label hidden by the map's box or its row name");
      for (const x of [glyphs.left + 1, glyphs.right - 1]) {
        const hit = document.elementFromPoint(x, glyphs.top + glyphs.height / 2);
        if (!hit || !seat.contains(hit)) problems.push(label + ": covered at x=" + x);
      }
    }
  }
  return problems;
}"""


@VIEWPORTS
def test_a_wide_seat_map_scrolls_in_its_box_with_whole_touch_sized_seats(
    new_page: Any, viewport: dict[str, int], tmp_path: Path
) -> None:
    big = SeatedResourceFactory(name="Arena", seats__rows=FORTY_ROWS, seats__per_row=30)
    book(big, "A5", "ZN30")
    book(big, "B12", hold=True)
    theatre = SeatedResourceFactory(
        name="Chamber music at the Salle Cortot",
        seats__rows=list("ABCDEFGHIJ"),
        seats__per_row=20,
    )
    book(theatre, "C9", "C10", "C11", "D10")
    book(theatre, "E12", "E13", hold=True)
    small = SeatedResourceFactory(seats__rows=["A", "B"], seats__per_row=4)
    page = new_page(**viewport)

    for resource in (big, theatre, small):
        page.goto(f"/r/{resource.slug}/")
        assert page.evaluate(NO_HORIZONTAL_SCROLL), resource.name
        wider = page.evaluate(
            "() => { const map = document.querySelector('[data-seat-map]');"
            " return map.scrollWidth > map.clientWidth; }"
        )
        assert wider == (resource != small)
        # The page says the map scrolls sideways when it does, and only then.
        expect(page.locator("[data-seat-map-hint]")).to_be_visible(visible=wider)
        assert page.locator("[data-seat-map] label.seat").count() == resource.capacity
        problems = page.evaluate(SEATS_WHOLE_AND_TOUCH_SIZED, [TOUCH_TARGET_PX])
        assert problems == [], problems[:10]

    # Scrolled to its far right, the map still names each row in sight at its left edge.
    page.goto(f"/r/{big.slug}/")
    rows_named = page.evaluate(
        """() => {
          const map = document.querySelector("[data-seat-map]");
          map.scrollIntoView({ block: "start" });
          map.scrollLeft = map.scrollWidth;
          const view = map.getBoundingClientRect();
          const bottom = Math.min(view.bottom, window.innerHeight);
          return [...map.querySelectorAll(".seat-row__label")].flatMap((name) => {
            const box = name.getBoundingClientRect();
            if (box.top < view.top || box.bottom > bottom) return [];
            const x = box.left + box.width / 2;
            const onTop = document.elementFromPoint(x, box.top + box.height / 2) === name;
            const atLeftEdge = box.left >= view.left && box.left < view.left + 8;
            return [name.textContent + (onTop && atLeftEdge ? "" : " hidden")];
          });
        }"""
    )
    assert len(rows_named) >= 8, rows_named
    assert not [name for name in rows_named if name.endswith(" hidden")], rows_named
    assert page.evaluate("document.querySelector('[data-seat-map]').scrollLeft") > 500

    if viewport == PHONE:
        page.goto(f"/r/{theatre.slug}/")
        seat(page, "F10").click()
        seat(page, "F11").click()
        expect(page.locator("[data-selection-summary]")).to_have_text("Your choice: F10, F11")
        save_screenshot(page, "seat-map-phone", tmp_path)


@VIEWPORTS
def test_the_seat_map_is_one_tab_stop_crossed_with_arrow_keys(
    new_page: Any, viewport: dict[str, int]
) -> None:
    resource = SeatedResourceFactory(seats__rows=FORTY_ROWS, seats__per_row=30)
    book(resource, "A2", "B30")
    book(resource, "B1", hold=True)
    page = new_page(**viewport)
    page.goto(f"/r/{resource.slug}/")
    seat_map = page.locator("[data-seat-map]")
    hold_button = page.get_by_role("button", name="Hold my places")

    # A screen reader hears row, seat and state, for each of the 1,200 seats.
    names = re.findall(r'checkbox "([^"]*)"', seat_map.aria_snapshot())
    assert len(names) == 1200
    odd = [
        n
        for n in names
        if not re.fullmatch(r"Row [A-Z]{1,2}, seat \d{1,2}, (available|booked|taken)", n)
    ]
    assert odd == [], odd[:5]
    assert "Row A, seat 5, available" in names
    assert {"Row A, seat 2, booked", "Row B, seat 1, taken"} <= set(names)
    expect(
        page.get_by_role("checkbox", name="Row ZN, seat 29, available", exact=True)
    ).to_have_count(1)

    # One tab stop: in from the skip link, out to the button after the map, and back.
    skip = page.get_by_role("link", name="Skip the seat map")
    skip.focus()
    assert skip.bounding_box()["width"] > 50  # shown when focused
    page.keyboard.press("Tab")
    assert focused_seat(page) == "A1"
    page.keyboard.press("Tab")
    expect(hold_button).to_be_focused()
    page.keyboard.press("Shift+Tab")
    assert focused_seat(page) == "A1"
    assert tab_stops(seat_map) == 1

    # Arrow keys move between the seats that can be picked; taken ones are passed over.
    moves = []
    for key in ("ArrowRight", "ArrowDown", "ArrowLeft", "ArrowLeft", "End", "ArrowUp", "Home"):
        page.keyboard.press(key)
        moves.append(focused_seat(page))
    assert moves == ["A3", "B3", "B2", "B2", "B29", "A29", "A1"]
    last_row = seat_map.locator(".seat-row").last
    page.keyboard.press("Control+End")
    assert focused_seat(page) == last_row.locator("label.seat").last.get_attribute(
        "data-seat-label"
    )
    page.keyboard.press("Control+Home")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert focused_seat(page) == "A4"

    # The seat with the focus is in view, clear of the row name stuck at the left.
    page.keyboard.press("End")
    for _ in range(5):
        page.keyboard.press("ArrowLeft")
    assert focused_seat(page) == "A25"
    in_view = page.evaluate(
        """() => {
          const seat = document.activeElement.nextElementSibling.getBoundingClientRect();
          const map = document.querySelector("[data-seat-map]").getBoundingClientRect();
          const rowName = document.activeElement.closest(".seat-row")
            .querySelector(".seat-row__label").getBoundingClientRect();
          return seat.left >= Math.max(map.left, rowName.right) && seat.right <= map.right
            && seat.top >= map.top && seat.bottom <= map.bottom
            && seat.top >= 0 && seat.bottom <= window.innerHeight;
        }"""
    )
    assert in_view

    # Space picks; the map stays one tab stop, which remembers where it was.
    page.keyboard.press("Space")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Space")
    expect(page.locator("[data-selection-summary]")).to_have_text("Your choice: A25, B25")
    assert tab_stops(seat_map) == 1
    page.keyboard.press("Tab")
    expect(hold_button).to_be_focused()
    page.keyboard.press("Shift+Tab")
    assert focused_seat(page) == "B25"

    # Someone else books the seat with the focus: the focus moves to the nearest free seat.
    book(resource, "B25", "B26")
    expect(page.locator(f"#seat-{seat_id(resource, 'B25')}")).to_be_disabled(
        timeout=LIVE_DEADLINE_MS
    )
    assert focused_seat(page) == "B24"
    assert tab_stops(seat_map) == 1

    # The skip link goes past the map, to the choice and then the button.
    skip.focus()
    page.keyboard.press("Enter")
    expect(page.locator("[data-selection-summary]")).to_be_focused()
    page.keyboard.press("Tab")
    expect(hold_button).to_be_focused()
    hold_button.click()
    expect(page.locator("[data-held-places]")).to_have_text("A25")
