"""French and German: complete catalogues that compile, pages and API problems in the
request's language, the language switcher, and emails in the language of the booking."""

from __future__ import annotations

import gettext
import io
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import translation

from bookings.api_keys import api_client_create
from bookings.models import Reservation
from reservo.catalogues import Entry, compile_po, mo_bytes, parse_po
from tests.conftest import outbox_email
from tests.factories import ResourceFactory
from tests.web.conftest import form_token

LANGUAGES = ("fr", "de")
CATALOGUES = [
    Path(settings.BASE_DIR) / "locale" / code / "LC_MESSAGES" / "django.po" for code in LANGUAGES
]
# What a translation must keep exactly: %(name)s, %s and %d, {name}, and the __N__-style
# markers the pages' scripts fill in.
PLACEHOLDER = re.compile(r"%\(\w+\)[sdfi]|%[sdfi]|\{\w+\}|__[A-Z]+__")
PLURAL_FORMS = {"fr": "nplurals=2; plural=(n > 1);", "de": "nplurals=2; plural=(n != 1);"}


@pytest.fixture(autouse=True)
def _default_language() -> Iterator[None]:
    yield
    translation.deactivate()


def placeholders(text: str) -> list[str]:
    return sorted(PLACEHOLDER.findall(text))


# The catalogues -------------------------------------------------------------------------


@pytest.mark.parametrize("path", CATALOGUES, ids=LANGUAGES)
def test_every_message_has_a_translation_with_the_same_placeholders(path: Path) -> None:
    entries = parse_po(path)
    header, messages = entries[0], entries[1:]
    assert header.msgid == "" and not header.fuzzy
    assert f"Plural-Forms: {PLURAL_FORMS[path.parts[-3]]}" in header.msgstr[0]
    assert len(messages) > 400

    def problems(entry: Entry) -> list[str]:
        if entry.fuzzy:
            return ["fuzzy"]
        if entry.msgid_plural is None:
            wanted = [placeholders(entry.msgid)]
            forms = [entry.msgstr.get(0, "")]
        else:
            wanted = [placeholders(entry.msgid), placeholders(entry.msgid_plural)]
            forms = entry.translations
            if len(forms) != 2:
                return [f"{len(forms)} plural forms"]
        found = []
        for form in forms:
            if not form.strip():
                found.append("untranslated")
            elif placeholders(form) not in wanted and set(placeholders(form)) != set(wanted[-1]):
                found.append(f"placeholders {placeholders(form)} in {form!r}")
        return found

    wrong = {entry.msgid: problems(entry) for entry in messages if problems(entry)}
    assert wrong == {}


@pytest.mark.parametrize("path", CATALOGUES, ids=LANGUAGES)
def test_the_catalogues_compile_to_what_gettext_reads(path: Path, tmp_path: Path) -> None:
    copy = tmp_path / "django.po"
    copy.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    compiled = gettext.GNUTranslations(io.BytesIO(compile_po(copy).read_bytes()))
    translations = {entry.msgid: entry for entry in parse_po(path)[1:]}
    # Every message is in the compiled catalogue, each plural form where it belongs.
    assert len(compiled._catalog) - 1 == sum(  # type: ignore[attr-defined]
        2 if entry.msgid_plural is not None else 1 for entry in translations.values()
    )
    hours = translations["%(n)d hour"].translations
    assert compiled.ngettext("%(n)d hour", "%(n)d hours", 1) == hours[0]
    assert compiled.ngettext("%(n)d hour", "%(n)d hours", 2) == hours[1]
    assert compiled.gettext("Sold out") == translations["Sold out"].msgstr[0]


# What makemessages reads: the project's code and templates (not the suite, the benchmark or
# the chaos harness).
SOURCES = ("bookings", "reservo", "resources", "settings_app", "templates")


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="needs GNU gettext's xgettext")
def test_every_translatable_string_is_in_the_catalogues(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What makemessages would extract today is all there, translated: a string marked for
    translation but never added to the catalogues would be shown in English. It runs on a
    copy, so the catalogues themselves are left alone."""
    base = Path(settings.BASE_DIR)
    for source in SOURCES:
        shutil.copytree(
            base / source, tmp_path / source, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copytree(base / "locale", tmp_path / "locale", ignore=shutil.ignore_patterns("*.mo"))
    monkeypatch.chdir(tmp_path)
    with override_settings(LOCALE_PATHS=[tmp_path / "locale"]):
        call_command("makemessages", locale=list(LANGUAGES), no_obsolete=True, verbosity=0)
    for code in LANGUAGES:
        extracted = parse_po(tmp_path / "locale" / code / "LC_MESSAGES" / "django.po")[1:]
        untranslated = [entry.msgid for entry in extracted if not entry.translated]
        assert untranslated == [], f"{code}: run makemessages and translate these"


def test_a_fuzzy_or_untranslated_message_is_left_out_as_msgfmt_does() -> None:
    entries = [
        Entry(msgid="", msgstr={0: "Content-Type: text/plain; charset=UTF-8\n"}),
        Entry(msgid="Kept", msgstr={0: "Gardé"}),
        Entry(msgid="Doubtful", msgstr={0: "Douteux"}, flags={"fuzzy"}),
        Entry(msgid="Missing", msgstr={0: ""}),
        Entry(msgid="%d seat", msgid_plural="%d seats", msgstr={0: "%d place", 1: ""}),
    ]
    compiled = gettext.GNUTranslations(io.BytesIO(mo_bytes(entries)))
    assert compiled.gettext("Kept") == "Gardé"
    assert compiled.gettext("Doubtful") == "Doubtful"
    assert compiled.gettext("Missing") == "Missing"
    assert compiled.ngettext("%d seat", "%d seats", 1) == "%d seat"


# Pages ----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("language", "said"),
    [
        ("fr", ["À l'affiche", "Réserver", "Reservo ne vend jamais deux fois la même place."]),
        ("de", ["Programm", "Buchen", "Reservo verkauft nie einen Platz zweimal."]),
        ("en", ["What's on", "Book", "Reservo never sells a place twice."]),
    ],
)
def test_the_pages_speak_the_browsers_language(
    client: Client, language: str, said: list[str]
) -> None:
    ResourceFactory(name="Friday meetup")
    reply = client.get("/", headers={"Accept-Language": language})
    page = reply.content.decode()
    assert reply["Content-Language"] == language
    assert f'<html lang="{language}">' in page
    for text in said:
        assert text in page


@pytest.mark.django_db
def test_the_resource_page_in_german_says_the_date_in_german(client: Client) -> None:
    resource = ResourceFactory(name="Konzert", capacity=5)
    page = client.get(
        reverse("bookings:resource", args=[resource.slug]), headers={"Accept-Language": "de"}
    ).content.decode()
    assert "Meine Plätze reservieren" in page
    assert "Anzahl der Plätze" in page
    assert re.search(r"(Mo|Di|Mi|Do|Fr|Sa|So)\., \d{1,2}\. ", page), "no German date"


SWITCHER = re.compile(
    r'<form class="language-switcher" action="(?P<action>[^"]+)" method="post"'
    r'.*?name="next" value="(?P<next>[^"]*)"(?P<rest>.*?)</form>',
    re.S,
)


@pytest.mark.django_db
def test_every_page_has_a_language_switcher_that_keeps_the_page(client: Client) -> None:
    resource = ResourceFactory()
    path = reverse("bookings:resource", args=[resource.slug]) + "?quantity=2"
    page = client.get(path, headers={"Accept-Language": "fr"}).content.decode()
    switcher = SWITCHER.search(page)
    assert switcher, "no language switcher"
    assert switcher["action"] == reverse("set_language")
    assert switcher["next"] == path.replace("&", "&amp;")
    assert 'id="language-switcher-label">Langue<' in switcher["rest"]
    buttons = re.findall(
        r'<button type="submit" name="language" value="(\w+)" lang="\w+"[^>]*?( aria-current="true")?>([^<]+)</button>',
        switcher["rest"],
    )
    assert buttons == [
        ("en", "", "English"),
        ("fr", ' aria-current="true"', "Français"),
        ("de", "", "Deutsch"),
    ]


@pytest.mark.django_db
def test_the_switchers_choice_wins_over_the_browsers_language(client: Client) -> None:
    resource = ResourceFactory()
    path = reverse("bookings:resource", args=[resource.slug])
    client.get(path, headers={"Accept-Language": "fr"})  # the CSRF cookie, as a browser has

    reply = client.post(
        reverse("set_language"),
        {
            "language": "de",
            "next": path,
            "csrfmiddlewaretoken": client.cookies[settings.CSRF_COOKIE_NAME].value,
        },
        headers={"Accept-Language": "fr"},
    )

    assert reply.status_code == 302
    assert reply["Location"] == path
    assert client.cookies[settings.LANGUAGE_COOKIE_NAME].value == "de"
    back = client.get(path, headers={"Accept-Language": "fr"})
    assert back["Content-Language"] == "de"
    assert "Meine Plätze reservieren" in back.content.decode()


@pytest.mark.django_db
def test_the_switcher_refuses_to_send_the_customer_elsewhere(client: Client) -> None:
    client.get("/")
    reply = client.post(
        reverse("set_language"),
        {
            "language": "fr",
            "next": "https://evil.example.com/",
            "csrfmiddlewaretoken": client.cookies[settings.CSRF_COOKIE_NAME].value,
        },
    )
    assert reply.status_code == 302
    assert "evil.example.com" not in reply["Location"]


# The API --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_api_problems_follow_accept_language(client: Client) -> None:
    reply = client.get("/api/v1/no-such-thing/", headers={"Accept-Language": "de"})
    assert reply.status_code == 404
    assert reply["Content-Language"] == "de"
    problem = reply.json()
    assert (problem["title"], problem["detail"], problem["code"]) == (
        "Nicht gefunden",
        "Nicht gefunden.",
        "not_found",
    )


@pytest.mark.django_db
def test_a_refused_api_booking_is_explained_in_german_and_a_booking_keeps_its_language(
    client: Client,
) -> None:
    _api_client, key = api_client_create(name="booker", scopes=("book",))
    resource = ResourceFactory(name="Konzert", capacity=1)
    headers = {"Authorization": f"Api-Key {key}", "Accept-Language": "de"}

    def book() -> Any:
        return client.post(
            "/api/v1/reservations/",
            {"resource": resource.pk, "quantity": 1, "customer": {"email": "ada@example.com"}},
            content_type="application/json",
            headers=headers,
        )

    booked = book()
    assert booked.status_code == 201, booked.content
    refused = book().json()
    assert (refused["code"], refused["title"], refused["detail"]) == (
        "sold_out",
        "Ausverkauft",
        "Ausverkauft.",
    )
    reservation = Reservation.objects.get(resource=resource)
    assert reservation.language == "de"
    email = outbox_email(reservation, "reservation.confirmed")
    assert email.subject == f"Buchung bestätigt: {reservation.reference}"


# Emails ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_booking_made_in_french_is_emailed_in_french(client: Client) -> None:
    resource = ResourceFactory(name="Concert du vendredi")
    url = reverse("bookings:resource", args=[resource.slug])
    french = {"Accept-Language": "fr-FR,fr;q=0.9"}
    client.get(url, headers=french)
    held = client.post(url, {"form_token": form_token(client, url), "quantity": 2}, headers=french)
    assert held.status_code == 302
    confirmed = client.post(
        held["Location"], {"name": "Ada", "email": "ada@example.com"}, headers=french
    )
    assert confirmed.status_code == 302, confirmed.content.decode()[:2000]

    reservation = Reservation.objects.get(resource=resource)
    assert reservation.language == "fr"
    email = outbox_email(reservation, "reservation.confirmed")
    html = email.alternatives[0][0]
    assert email.subject == f"Réservation confirmée : {reservation.reference}"
    assert "Bonjour Ada," in email.body
    assert "Votre réservation est confirmée." in email.body
    assert "Voir ou annuler votre réservation :" in email.body
    assert re.search(r"Quand : (lun|mar|mer|jeu|ven|sam|dim)\. \d{1,2} ", email.body)
    assert '<html lang="fr">' in html
    assert "Votre réservation est confirmée." in html


@pytest.mark.django_db
def test_the_language_chosen_at_checkout_is_the_emails(client: Client) -> None:
    resource = ResourceFactory()
    url = reverse("bookings:resource", args=[resource.slug])
    client.get(url, headers={"Accept-Language": "fr"})
    held = client.post(
        url,
        {"form_token": form_token(client, url), "quantity": 1},
        headers={"Accept-Language": "fr"},
    )
    confirmed = client.post(
        held["Location"],
        {"name": "Ada", "email": "ada@example.com"},
        headers={"Accept-Language": "de"},
    )
    assert confirmed.status_code == 302

    reservation = Reservation.objects.get(resource=resource)
    assert reservation.language == "de"
    assert "Ihre Buchung ist bestätigt." in outbox_email(reservation, "reservation.confirmed").body


@pytest.mark.django_db
def test_a_booking_without_a_language_is_emailed_in_english(client: Client) -> None:
    from bookings.services import Actor, reservation_book

    booking = reservation_book(
        resource_id=ResourceFactory().pk,
        actor=Actor("customer"),
        quantity=1,
        customer_email="ada@example.com",
    )
    with translation.override("de"):  # whatever the worker's own language
        email = outbox_email(booking.reservation, "reservation.confirmed")
    assert email.subject.startswith("Booking confirmed: ")
    assert "Your booking is confirmed." in email.body


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_browser_switches_language_and_stays_on_the_page(new_page: Any) -> None:
    from playwright.sync_api import expect

    resource = ResourceFactory(name="Jazz night")
    page = new_page(width=360, height=740)
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text))
    page.goto(f"/r/{resource.slug}/")
    switcher = page.get_by_role("form", name="Language")
    expect(switcher.get_by_role("button", name="English")).to_have_attribute("aria-current", "true")

    switcher.get_by_role("button", name="Deutsch").click()

    expect(page.get_by_role("button", name="Meine Plätze reservieren")).to_be_visible()
    assert page.url.endswith(f"/r/{resource.slug}/")
    assert page.locator("html").get_attribute("lang") == "de"
    switcher = page.get_by_role("form", name="Sprache")
    expect(switcher.get_by_role("button", name="Deutsch")).to_have_attribute("aria-current", "true")
    page.screenshot(path="/tmp/i18n/switcher-de.png", full_page=False)
    switcher.get_by_role("button", name="Français").click()
    expect(page.get_by_role("button", name="Réserver mes places")).to_be_visible()
    assert not [text for text in violations if "Content Security Policy" in text]


# Staff ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_door_check_in_speaks_german(client: Client) -> None:
    from bookings.services import Actor, reservation_book
    from tests.web.test_check_in_page import logged_in, staff_user

    door = logged_in(staff_user("sam.k", clerk=True))
    booking = reservation_book(
        resource_id=ResourceFactory(name="Konzert").pk,
        actor=Actor("customer"),
        quantity=2,
        customer_name="Ada",
    )
    german = {"Accept-Language": "de"}
    page = door.get("/staff/check-in/", headers=german).content.decode()
    assert '<h1 class="check-in-title">Einlass</h1>' in page
    assert "Referenz oder QR-Code" in page

    first = door.post("/staff/check-in/", {"code": booking.reservation.reference}, headers=german)
    again = door.post("/staff/check-in/", {"code": booking.reservation.reference}, headers=german)

    assert "Eingelassen." in first.content.decode()
    assert "2 Plätze" in first.content.decode()
    assert "Bereits von " in again.content.decode()


@pytest.mark.django_db
def test_the_admins_own_labels_and_actions_speak_french(admin_client: Client) -> None:
    ResourceFactory(name="Concert")
    page = admin_client.get(
        reverse("admin:resources_resource_changelist"), headers={"Accept-Language": "fr"}
    ).content.decode()
    assert '<a href="/admin/sections/events/">Événements</a>' in page  # its section
    app_page = admin_client.get("/admin/resources/", headers={"Accept-Language": "fr"})
    assert "Événements et ressources" in app_page.content.decode()  # the app
    assert "Ouvrir à la réservation" in page  # an action
    assert "Vérifier les compteurs" in page  # a link of ours
