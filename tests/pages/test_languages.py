"""Languages: the patient's pages in German, English, Turkish, Arabic, Ukrainian and Polish,
staff pages in German and English; which language a page answers in, the switch, the note on a
page that lacks the chosen language, and the message extraction of the patient's pages."""

from __future__ import annotations

import re

import httpx2
import pytest

from app.pages import i18n, messages
from tests.factories import Demo, login

PATIENT_ONLY = ["tr", "ar", "uk", "pl"]
# One message each catalog must have, as the patient sees it on the join page's first step.
CHECKING_THE_LINK = {
    "tr": "Davet bağlantınız kontrol ediliyor…",
    "ar": "جارٍ التحقق من الرابط…",
    "uk": "Перевіряємо Ваше посилання…",
    "pl": "Sprawdzanie linku…",
}


def switch_links(html: str) -> dict[str, str]:
    """hreflang -> href of the language switch."""
    nav = html.split('<nav class="lang-switch"', 1)[1].split("</nav>", 1)[0]
    return {
        lang: href.replace("&amp;", "&")
        for href, lang in re.findall(r'<a[^>]* href="([^"]+)" hreflang="(\w+)"', nav)
    }


@pytest.mark.parametrize("lang", PATIENT_ONLY)
async def test_join_page_answers_in_a_patient_language_and_remembers_it(
    client: httpx2.AsyncClient, lang: str
) -> None:
    response = await client.get(f"/join?lang={lang}")
    assert response.status_code == 200
    direction = "rtl" if lang == "ar" else "ltr"
    assert f'<html lang="{lang}" dir="{direction}"' in response.text
    assert CHECKING_THE_LINK[lang] in response.text
    assert f"konsil_lang={lang}" in response.headers["set-cookie"]
    again = await client.get("/join")
    assert f'<html lang="{lang}"' in again.text


async def test_staff_page_asked_for_in_a_patient_language_is_german(
    client: httpx2.AsyncClient,
) -> None:
    response = await client.get("/login?lang=tr")
    assert '<html lang="de" dir="ltr"' in response.text
    assert "Anmelden" in response.text
    # Not remembered: the staff page does not offer it.
    assert "set-cookie" not in response.headers


async def test_staff_page_with_a_patient_language_in_the_cookie_is_german_with_a_note(
    client: httpx2.AsyncClient,
) -> None:
    await client.get("/join?lang=uk")
    response = await client.get("/login")
    assert '<html lang="de"' in response.text
    note = response.text.split('class="alert info lang-note"', 1)[1].split("</p>", 1)[0]
    assert 'lang="uk" dir="ltr"' in note
    assert "Ця сторінка доступна лише німецькою та англійською мовами." in note
    assert 'href="/login?lang=en"' in note
    # The patient's pages are still in their language.
    assert '<html lang="uk"' in (await client.get("/join")).text


async def test_legal_pages_stay_german_and_english_with_the_note_in_arabic(
    client: httpx2.AsyncClient,
) -> None:
    response = await client.get("/privacy?lang=ar")
    assert response.status_code == 200
    assert '<html lang="de" dir="ltr"' in response.text
    assert "Datenschutzhinweise" in response.text
    assert '<p class="alert info lang-note" lang="ar" dir="rtl">' in response.text
    assert "هذه الصفحة متاحة باللغتين الألمانية والإنجليزية فقط." in response.text
    assert set(switch_links(response.text)) == {"en"}


async def test_english_keeps_english_on_staff_pages_and_has_no_note(
    client: httpx2.AsyncClient,
) -> None:
    await client.get("/join?lang=en")
    response = await client.get("/login")
    assert '<html lang="en"' in response.text
    assert "lang-note" not in response.text


async def test_staff_pages_of_a_logged_in_gp_offer_only_german_and_english(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    await login(client, demo.gp)
    response = await client.get("/gp/appointments?lang=pl")
    assert response.status_code == 200
    assert '<html lang="de"' in response.text
    assert set(switch_links(response.text)) == {"en"}
    assert "data-lang-menu" not in response.text
    assert "lang-switch.js" not in response.text


async def test_patient_page_switch_offers_six_languages_named_in_themselves(
    client: httpx2.AsyncClient,
) -> None:
    response = await client.get("/join?lang=tr")
    links = switch_links(response.text)
    assert list(links) == ["de", "en", "tr", "ar", "uk", "pl"]
    assert links["ar"] == "/join?lang=ar"
    menu = response.text.split("data-lang-menu", 1)[1].split("</details>", 1)[0]
    for name in ("Deutsch", "English", "Türkçe", "العربية", "Українська", "Polski"):
        assert f">{name}</a>" in menu
    assert 'hreflang="tr" lang="tr" aria-current="true"' in menu
    # The menu's button names the current language in itself.
    assert '<span lang="tr">Türkçe</span></summary>' in menu
    # The join page keeps the link's token on a switch (lang-switch.js), before join.js runs.
    assert "data-keep-fragment" in menu
    scripts = re.findall(r'<script type="module" src="[^"]*/([\w-]+\.js)"', response.text)
    assert scripts.index("lang-switch.js") < scripts.index("join.js")


async def test_switch_keeps_the_query_and_never_holds_a_token(client: httpx2.AsyncClient) -> None:
    response = await client.get("/join?lang=pl&x=1")
    links = switch_links(response.text)
    assert links["uk"] == "/join?x=1&lang=uk"
    # The token is only ever in the browser's fragment: no switch link carries one.
    assert all("#" not in href for href in links.values())


@pytest.mark.parametrize("lang", PATIENT_ONLY)
async def test_error_page_is_a_patient_page(client: httpx2.AsyncClient, lang: str) -> None:
    response = await client.get(f"/no-such-page?lang={lang}", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert f'<html lang="{lang}"' in response.text
    title = i18n.translations(lang).gettext("Page not found")
    assert title != "Page not found"
    assert f'<h1 id="error-title">{title}</h1>' in response.text


@pytest.mark.parametrize("lang", PATIENT_ONLY)
async def test_script_catalogs_of_the_patient_languages(
    client: httpx2.AsyncClient, lang: str
) -> None:
    catalog = (await client.get(f"/i18n/{lang}.json")).json()
    assert catalog["Checking your link…"] == CHECKING_THE_LINK[lang]
    assert set(messages.patient_messages()) <= set(catalog)


def test_patient_pages_are_the_join_and_error_pages() -> None:
    assert i18n.offered("join.html") == i18n.PATIENT_LANGUAGES
    assert i18n.offered("error.html") == i18n.PATIENT_LANGUAGES
    assert i18n.offered("login.html") == i18n.STAFF_LANGUAGES
    assert i18n.offered("legal.html") == i18n.STAFF_LANGUAGES
    assert i18n.direction("ar") == "rtl"
    assert i18n.direction("uk") == "ltr"


def test_patient_messages_follow_templates_scripts_and_imports() -> None:
    files = {path.name for path in messages.patient_files()}
    # Templates the join page extends and includes, its scripts and what they import,
    # also the connection check loaded by import("./precheck.js").
    for name in ("join.html", "base.html", "_call.html", "error.html", "join.js", "call.js"):
        assert name in files
    for name in ("waiting-room.js", "media.js", "signaling.js", "api.js", "precheck.js"):
        assert name in files
    assert "staff-call.js" not in files
    assert "login.html" not in files
    found = messages.patient_messages()
    assert "Your link is not open yet" in found  # join.js
    assert "You are next." in found  # waiting-room.js
    assert "Hang up" in found  # join.html
    assert "Page not found" in found  # errors.py
    assert "Log in" not in found  # the login page is not a patient page


def test_placeholders_are_read_with_plural_forms() -> None:
    assert messages.placeholders("{count} people, %(n)s") == {"count", "n"}
    plural = "{minutes, plural, one {# minutę} few {# minuty} many {# minut} other {# minuty}}"
    assert messages.placeholders(f"za {plural}, {{name}}") == {"minutes", "name"}
    assert messages.placeholders("{broken") == {"{"}
    assert messages.placeholders("{minutes} minut}") == {"minutes", "{"}
