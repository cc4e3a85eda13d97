"""Terms of use, privacy notice and imprint: public, German first, the operator's own details."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from app.main import create_app
from app.pages.legal import hours
from app.settings import Settings
from tests.conftest import create_schema, lifespan_in_own_task, new_client
from tests.factories import Demo, login
from tests.pages.test_pages import inline_code

TITLES = {
    ("terms", "de"): "Nutzungsbedingungen",
    ("privacy", "de"): "Datenschutzhinweise",
    ("imprint", "de"): "Impressum",
    ("terms", "en"): "Terms of use",
    ("privacy", "en"): "Privacy notice",
    ("imprint", "en"): "Imprint",
}
SESSION_COOKIES = ("konsil_staff", "konsil_patient", "konsil_device")
OPERATOR = {
    "operator_name": "Klinikum Musterstadt gGmbH",
    "operator_address": "Klinikstraße 1, 03046 Musterstadt",
    "operator_representative": "Geschäftsführerin Dr. Anna Beispiel",
    "operator_email": "datenschutz@klinikum-musterstadt.example",
    "operator_phone": "+49 355 000000",
    "operator_hosting": "Rechenzentrum des Klinikums, Musterstadt (Deutschland)",
    "operator_dpo": "Max Schutz, dsb@klinikum-musterstadt.example",
    "operator_register": "Amtsgericht Cottbus HRB 0000",
    "operator_vat_id": "DE000000000",
    "operator_supervisory_authority": "Landesamt für Gesundheit Musterland",
    "operator_dpa": "Landesbeauftragte für den Datenschutz Musterland",
}
MISSING_DE = "Der Betreiber dieses Dienstes hat noch nicht alle seine Angaben eingetragen."
MARK_DE = "[vom Betreiber nicht eingetragen]"


@asynccontextmanager
async def serving(
    cfg: Settings, logs: list[dict[str, object]] | None = None
) -> AsyncIterator[httpx2.AsyncClient]:
    """The app for ``cfg``; with ``logs``, what it logs from its start on."""
    await create_schema(cfg.database_url)
    application = create_app(cfg)  # configures logging: capture only after it
    with capture_logs() as captured:
        async with lifespan_in_own_task(application), new_client(application) as client:
            yield client
    if logs is not None:
        logs.extend(dict(e) for e in captured)


def cookie_names(response: httpx2.Response) -> set[str]:
    return {h.split("=", 1)[0].strip() for h in response.headers.get_list("set-cookie")}


@pytest.mark.parametrize(("page", "lang"), sorted(TITLES))
async def test_legal_pages_answer_without_cookies_or_login(
    client: httpx2.AsyncClient, page: str, lang: str
) -> None:
    response = await client.get(f"/{page}?lang={lang}")
    assert response.status_code == 200
    assert f'<html lang="{lang}"' in response.text
    assert f'<h1 id="legal-title">{TITLES[page, lang]}</h1>' in response.text
    # ?lang= remembers the language; nothing logs anybody in.
    assert cookie_names(response) == {"konsil_lang"}


@pytest.mark.parametrize("page", ["terms", "privacy", "imprint"])
async def test_legal_pages_are_german_for_a_first_visit_and_set_no_cookie(
    client: httpx2.AsyncClient, page: str
) -> None:
    response = await client.get(f"/{page}", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert response.status_code == 200
    assert '<html lang="de"' in response.text
    assert TITLES[page, "de"] in response.text
    assert "set-cookie" not in response.headers


async def test_legal_pages_do_not_touch_a_staff_session(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    await login(client, demo.gp)
    for page in ("terms", "privacy", "imprint"):
        response = await client.get(f"/{page}")
        assert response.status_code == 200
        assert not cookie_names(response) & set(SESSION_COOKIES)


async def test_legal_pages_are_complete_without_javascript(client: httpx2.AsyncClient) -> None:
    response = await client.get("/privacy")
    # The text is in the HTML the server sends, not filled in by a script.
    assert "Ende-zu-Ende verschlüsselt" in response.text
    assert "spätestens\n  90 Tage nach der Sprechstunde" in response.text
    assert "konsil_patient" in response.text
    assert inline_code(response.text).problems == []


async def test_legal_pages_keep_the_language_switch(client: httpx2.AsyncClient) -> None:
    response = await client.get("/terms")
    assert 'href="/terms?lang=en"' in response.text
    english = await client.get("/terms?lang=en")
    assert 'href="/terms?lang=de"' in english.text


@pytest.mark.parametrize("path", ["/", "/login", "/join", "/no-such-page", "/terms"])
async def test_every_public_page_links_the_legal_pages(
    client: httpx2.AsyncClient, path: str
) -> None:
    response = await client.get(path, headers={"Accept": "text/html"})
    footer = response.text.split('<footer class="site-footer">', 1)[1]
    for href, label in (
        ("/terms", "Nutzungsbedingungen"),
        ("/privacy", "Datenschutz"),
        ("/imprint", "Impressum"),
    ):
        assert f'<a href="{href}"' in footer, (path, href)
        assert label in footer


async def test_staff_pages_link_the_legal_pages_in_a_new_tab(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    await login(client, demo.gp)
    response = await client.get("/call/1")
    assert response.status_code == 200
    # Leaving a call page in the same tab would end the call.
    assert '<a href="/privacy" target="_blank" rel="noopener">' in response.text


async def test_join_page_links_the_privacy_notice_at_the_consent(
    client: httpx2.AsyncClient,
) -> None:
    response = await client.get("/join")
    consent = response.text.split('data-step="consent"', 1)[1].split("</section>", 1)[0]
    assert '<a href="/privacy" target="_blank" rel="noopener">' in consent
    assert "Die vollständigen Datenschutzhinweise lesen" in consent


async def test_legal_pages_show_the_operators_details(
    make_settings: Callable[..., Settings],
) -> None:
    async with serving(make_settings(**OPERATOR)) as client:
        imprint = (await client.get("/imprint")).text
        privacy = (await client.get("/privacy")).text
        terms = (await client.get("/terms?lang=en")).text
    for key in (
        "operator_name",
        "operator_address",
        "operator_representative",
        "operator_phone",
        "operator_register",
        "operator_vat_id",
        "operator_supervisory_authority",
    ):
        assert OPERATOR[key] in imprint, key
    assert f'<a href="mailto:{OPERATOR["operator_email"]}">' in imprint
    for key in ("operator_dpo", "operator_hosting", "operator_dpa", "operator_address"):
        assert OPERATOR[key] in privacy, key
    assert OPERATOR["operator_name"] in terms
    for text in (imprint, privacy):
        assert MISSING_DE not in text
        assert MARK_DE not in text


async def test_missing_operator_details_are_marked_not_made_up(
    client: httpx2.AsyncClient,
) -> None:
    response = await client.get("/imprint")
    assert MISSING_DE in response.text
    assert "Name des Betreibers" in response.text
    assert "Standort der Server" in response.text
    assert MARK_DE in response.text
    # Optional details that are not set are left out, not marked.
    assert "Umsatzsteuer" not in response.text


async def test_terms_state_the_link_window_this_installation_uses(
    make_settings: Callable[..., Settings],
) -> None:
    async with serving(make_settings(link_early_minutes=15, link_grace_minutes=45)) as client:
        response = await client.get("/terms")
    assert "öffnet sich 15 Minuten vor Ihrem Termin" in response.text
    assert "bis\n  45 Minuten nach" in response.text


async def test_override_directory_replaces_the_shipped_text(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    legal = tmp_path / "legal"
    legal.mkdir()
    (legal / "terms.de.html").write_text(
        "<h2>Nutzungsbedingungen des Klinikums</h2><p>Fassung der Rechtsabteilung.</p>",
        encoding="utf-8",
    )
    (legal / "privacy.en.html").write_text("<p>Our lawyer's privacy notice.</p>")
    logs: list[dict[str, object]] = []
    async with serving(make_settings(legal_dir=legal), logs) as client:
        terms_de = await client.get("/terms?lang=de")
        terms_en = await client.get("/terms?lang=en")
        privacy_en = await client.get("/privacy?lang=en")
        privacy_de = await client.get("/privacy?lang=de")
        imprint = await client.get("/imprint?lang=de")
    assert "Fassung der Rechtsabteilung." in terms_de.text
    assert "Was Konsil ist" not in terms_de.text
    # The operator's text speaks for itself: no notice about KONSIL_OPERATOR_* settings.
    assert MISSING_DE not in terms_de.text
    # No English text from the operator: theirs in German, said so, never Konsil's default.
    assert "Fassung der Rechtsabteilung." in terms_en.text
    assert "This text is not available in your language." in terms_en.text
    assert '<div class="legal-text" lang="de">' in terms_en.text
    assert "Our lawyer&#39;s privacy notice." not in privacy_en.text  # not escaped: it is HTML
    assert "<p>Our lawyer's privacy notice.</p>" in privacy_en.text
    assert "<p>Our lawyer's privacy notice.</p>" in privacy_de.text
    assert "Dieser Text liegt in Ihrer Sprache nicht vor." in privacy_de.text
    # Pages the operator did not replace keep the shipped text.
    assert "Angaben nach § 5 Digitale-Dienste-Gesetz" in imprint.text
    # Anlage 31b wants German terms: a replaced page without German is called out at start-up.
    [gap] = [e for e in logs if e["event"] == "legal.german_text_missing"]
    assert gap["page"] == "privacy"


def test_legal_dir_must_be_a_directory(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    with pytest.raises(ValidationError, match="KONSIL_LEGAL_DIR"):
        make_settings(legal_dir=tmp_path / "missing")
    assert make_settings(legal_dir="").legal_dir is None


def production(make_settings: Callable[..., Settings], **overrides: object) -> Settings:
    return make_settings(
        environment="production", secret_key="s" * 40, cookie_secure=True, **overrides
    )


async def test_production_start_warns_when_operator_details_are_missing(
    make_settings: Callable[..., Settings],
) -> None:
    cfg = production(make_settings, operator_name="Klinikum Musterstadt gGmbH")
    logs: list[dict[str, object]] = []
    async with serving(cfg, logs) as client:
        response = await client.get("/imprint")
    [warning] = [e for e in logs if e["event"] == "legal.operator_incomplete"]
    assert warning["log_level"] == "warning"
    missing = warning["missing"]
    assert isinstance(missing, list)
    assert "KONSIL_OPERATOR_DPO" in missing
    assert "KONSIL_OPERATOR_NAME" not in missing
    assert MISSING_DE in response.text


async def test_production_start_is_quiet_when_operator_details_are_complete(
    make_settings: Callable[..., Settings],
) -> None:
    logs: list[dict[str, object]] = []
    async with serving(production(make_settings, **OPERATOR), logs):
        pass
    assert [e for e in logs if str(e["event"]).startswith("legal.")] == []


def test_hours_are_written_the_local_way() -> None:
    assert hours(360, "de") == "6"
    assert hours(90, "de") == "1,5"
    assert hours(90, "en") == "1.5"


async def test_privacy_notice_names_the_message_services_only_when_messages_are_sent(
    make_settings: Callable[..., Settings],
) -> None:
    async with serving(make_settings()) as client:
        plain = (await client.get("/privacy")).text
    assert "gibt keine Daten an Dritte weiter." in plain
    assert "Einladungen und Erinnerungen" not in plain

    messaging = make_settings(
        sms_url="webhook+https://sms.example/send",
        sms_secret="s" * 40,
        smtp_url="smtp://127.0.0.1:25?starttls=false",
        mail_from="Konsil <konsil@example.org>",
    )
    async with serving(messaging) as client:
        german = (await client.get("/privacy")).text
        english = (await client.get("/privacy?lang=en")).text
    assert "außer an\n  die Dienstleister, die Nachrichten an Sie zustellen" in german
    assert "per E-Mail und/oder SMS" in german
    assert "SMS-Dienstleister, der dafür Ihre Handynummer" in german
    assert "Art. 28 DSGVO" in german
    assert "by e-mail and/or SMS" in english
    assert "mobile number and the text of the message" in english


async def test_privacy_notice_names_the_cookies_as_they_are_set(
    make_settings: Callable[..., Settings],
) -> None:
    async with serving(make_settings()) as client:
        plain = (await client.get("/privacy")).text
    assert all(f"<strong>{name}</strong>" in plain for name in SESSION_COOKIES)
    assert "konsil_oidc" not in plain  # no single sign-on here
    sso = {
        "oidc_issuer": "https://login.klinikum.example/realms/konsil",
        "oidc_client_id": "konsil",
        "oidc_role_map": {"konsil-gp": "gp"},
    }
    async with serving(make_settings(cookie_secure=True, **sso)) as client:
        german = (await client.get("/privacy")).text
        english = (await client.get("/privacy?lang=en")).text
    for text in (german, english):
        for name in (
            "__Host-konsil_patient",
            "__Host-konsil_staff",
            "__Secure-konsil_device",
            "__Host-konsil_oidc",
        ):
            assert f"<strong>{name}</strong>" in text
    assert "höchstens 10 Minuten" in " ".join(german.split())
    assert "at most 10 minutes" in " ".join(english.split())
