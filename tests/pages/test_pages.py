"""Page routes through the app: security headers, no inline code, languages, errors, static."""

from __future__ import annotations

from collections.abc import Callable
from html.parser import HTMLParser

import httpx2
import pytest

from app.main import create_app
from app.pages import messages
from app.pages.templating import static_version
from app.settings import Settings
from tests.conftest import create_schema, lifespan_in_own_task, new_client
from tests.factories import Demo, login

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self' ws://127.0.0.1:8000; font-src 'self'; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
PUBLIC_PAGES = ["/", "/login", "/join", "/guest", "/no-such-page"]
GP_PAGES = ["/gp", "/gp/appointments", "/gp/appointments/1", "/call/1"]
SPECIALIST_PAGES = [
    "/specialist",
    "/specialist/availability",
    "/specialist/appointments/1",
    "/call/1",
]


class InlineCodeFinder(HTMLParser):
    """Collects everything a strict CSP would block: inline scripts, styles, handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script":
            self._in_script = True
            if not names.get("src"):
                self.problems.append("script without src")
            else:
                self.scripts.append(names["src"] or "")
        if tag == "style":
            self.problems.append("<style> element")
        for name, value in attrs:
            if name == "style" or name.startswith("on"):
                self.problems.append(f"{tag}[{name}]")
            if name in ("href", "src", "action") and (value or "").startswith("javascript:"):
                self.problems.append(f"{tag}[{name}=javascript:]")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append("inline script body")


def inline_code(html: str) -> InlineCodeFinder:
    finder = InlineCodeFinder()
    finder.feed(html)
    return finder


async def test_pages_send_strict_security_headers(client: httpx2.AsyncClient) -> None:
    response = await client.get("/login")
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "camera=(self)" in response.headers["permissions-policy"]
    assert "microphone=(self)" in response.headers["permissions-policy"]
    assert response.headers["cache-control"] == "no-store"


async def test_api_responses_carry_the_security_headers_too(client: httpx2.AsyncClient) -> None:
    response = await client.get("/api/v1/auth/me")
    assert response.status_code == 401
    assert response.headers["content-security-policy"] == CSP


@pytest.mark.parametrize(
    "path", ["/api/v1/auth/me", "/api/v1/specialties", "/openapi.json", "/healthz", "/no/such"]
)
async def test_responses_are_not_stored_in_caches_by_default(
    client: httpx2.AsyncClient, path: str
) -> None:
    # No route has to remember it: answers, errors and lists alike may carry health data.
    response = await client.get(path)
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("path", PUBLIC_PAGES)
async def test_public_pages_have_no_inline_code(client: httpx2.AsyncClient, path: str) -> None:
    response = await client.get(path, headers={"Accept": "text/html"})
    found = inline_code(response.text)
    assert found.problems == []
    assert found.scripts, "every page loads its modules from /static"
    assert all(src.startswith(f"/static/{static_version()}/") for src in found.scripts)


async def test_staff_pages_have_no_inline_code(
    client: httpx2.AsyncClient, client_factory: Callable[[], httpx2.AsyncClient], demo: Demo
) -> None:
    await login(client, demo.gp)
    for path in GP_PAGES:
        response = await client.get(path)
        assert response.status_code == 200, path
        assert inline_code(response.text).problems == [], path
    async with client_factory() as specialist:
        await login(specialist, demo.specialist)
        for path in SPECIALIST_PAGES:
            response = await specialist.get(path)
            assert response.status_code == 200, path
            assert inline_code(response.text).problems == [], path


def display_capture(response: httpx2.Response) -> str:
    policy = response.headers["permissions-policy"]
    return next(p.split("=", 1)[1] for p in policy.split(", ") if p.startswith("display-capture="))


async def test_screen_capture_is_allowed_on_the_staff_call_page_only(
    client: httpx2.AsyncClient, client_factory: Callable[[], httpx2.AsyncClient], demo: Demo
) -> None:
    for path in [*PUBLIC_PAGES, "/call/1", "/api/v1/auth/me"]:
        # Signed out, /call/1 is a redirect to the login page: no screen capture there.
        assert display_capture(await client.get(path)) == "()", path
    join = await client.get("/join")
    assert "data-share" not in join.text, "the patient gets no screen-share button"
    await login(client, demo.gp)
    async with client_factory() as specialist:
        await login(specialist, demo.specialist)
        for browser, paths in ((client, GP_PAGES), (specialist, SPECIALIST_PAGES)):
            for path in paths:
                response = await browser.get(path)
                expected = "(self)" if path.startswith("/call/") else "()"
                assert display_capture(response) == expected, path
                assert ("data-share" in response.text) == (expected == "(self)"), path


async def test_patient_join_page_allows_screen_capture_when_the_operator_does(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(patient_screen_share=True)
    await create_schema(settings.database_url)
    application = create_app(settings)
    async with lifespan_in_own_task(application), new_client(application) as patient:
        join = await patient.get("/join")
    assert display_capture(join) == "(self)"
    assert "data-share" in join.text


async def test_pages_are_german_by_default(client: httpx2.AsyncClient) -> None:
    response = await client.get("/login", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert '<html lang="de"' in response.text
    assert "Anmelden" in response.text
    assert "Passwort" in response.text


async def test_lang_query_switches_to_english_and_remembers_it(
    client: httpx2.AsyncClient,
) -> None:
    response = await client.get("/login?lang=en")
    assert '<html lang="en"' in response.text
    assert "Password" in response.text
    assert "konsil_lang=en" in response.headers["set-cookie"]
    again = await client.get("/login")
    assert '<html lang="en"' in again.text


async def test_unknown_language_falls_back_to_german(client: httpx2.AsyncClient) -> None:
    response = await client.get("/login?lang=xx")
    assert '<html lang="de"' in response.text
    assert "set-cookie" not in response.headers


async def test_language_switch_links_keep_the_page(client: httpx2.AsyncClient) -> None:
    response = await client.get("/login?next=%2Fgp")
    assert 'href="/login?next=%2Fgp&amp;lang=en"' in response.text


async def test_login_page_has_labelled_fields(client: httpx2.AsyncClient) -> None:
    response = await client.get("/login")
    assert '<label for="email">' in response.text
    assert '<label for="password">' in response.text
    assert 'autocomplete="current-password"' in response.text
    assert "login.js" in response.text


async def test_login_page_keeps_only_local_next_targets(client: httpx2.AsyncClient) -> None:
    local = await client.get("/login?next=/gp/appointments")
    foreign = await client.get("/login?next=//evil.example/x")
    assert 'data-next="/gp/appointments"' in local.text
    assert 'data-next=""' in foreign.text


@pytest.mark.parametrize(
    "target",
    [
        "%2F%09%2Fevil.example",
        "%2F%5Cevil.example",
        "%2F%0A%2Fevil.example",
        "https://evil.example",
    ],
)
async def test_login_page_refuses_next_targets_a_browser_would_read_as_foreign(
    client: httpx2.AsyncClient, target: str
) -> None:
    response = await client.get(f"/login?next={target}")
    assert response.status_code == 200
    assert 'data-next=""' in response.text


async def test_logged_in_staff_skip_the_login_page(client: httpx2.AsyncClient, demo: Demo) -> None:
    await login(client, demo.specialist)
    response = await client.get("/login")
    assert response.status_code == 303
    assert response.headers["location"] == "/specialist"


async def test_staff_pages_redirect_to_the_login(client: httpx2.AsyncClient) -> None:
    response = await client.get("/gp/appointments?x=1")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fgp%2Fappointments%3Fx%3D1"


async def test_staff_pages_refuse_the_wrong_role_with_a_page(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    await login(client, demo.gp)
    response = await client.get("/specialist")
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "Zugriff verweigert" in response.text


async def test_unknown_page_is_an_html_404(client: httpx2.AsyncClient) -> None:
    response = await client.get("/nirgendwo", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "Seite nicht gefunden" in response.text
    assert response.headers["content-security-policy"] == CSP


async def test_unknown_api_path_stays_json(client: httpx2.AsyncClient) -> None:
    response = await client.get("/api/v1/nirgendwo", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "http_404"


async def test_versioned_static_files_are_immutable(client: httpx2.AsyncClient) -> None:
    response = await client.get(f"/static/{static_version()}/call.js")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "javascript" in response.headers["content-type"]


async def test_unversioned_static_files_are_revalidated(client: httpx2.AsyncClient) -> None:
    response = await client.get("/static/app.css")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-cache"
    etag = response.headers["etag"]
    again = await client.get("/static/app.css", headers={"If-None-Match": etag})
    assert again.status_code == 304


async def test_old_static_versions_are_served_but_not_cached_forever(
    client: httpx2.AsyncClient,
) -> None:
    response = await client.get("/static/v-000000000000/app.css")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-cache"


async def test_static_refuses_paths_outside_the_directory(client: httpx2.AsyncClient) -> None:
    response = await client.get("/static/..%2f..%2fapp%2fsettings.py")
    assert response.status_code == 404


async def test_script_catalog_is_json_per_language(client: httpx2.AsyncClient) -> None:
    german = await client.get("/i18n/de.json")
    english = await client.get("/i18n/en.json")
    unknown = await client.get("/i18n/fr.json")
    assert german.json()["Connecting…"] == "Verbindung wird aufgebaut…"
    assert english.json() == {}
    assert unknown.status_code == 404


def test_every_message_has_a_german_translation() -> None:
    assert list(messages.untranslated("de")) == []
    assert messages.placeholder_mismatches("de") == []


@pytest.mark.parametrize("lang", messages.PATIENT_ONLY)
def test_every_patient_page_message_is_translated(lang: str) -> None:
    """Turkish, Arabic, Ukrainian and Polish translate every message of the patient's pages
    (templates, the scripts they load and what those import), with the same placeholders.
    The assertion lists what is missing: `python -m app.pages.messages` says where it is used."""
    assert messages.PATIENT_ONLY == ("tr", "ar", "uk", "pl")
    assert list(messages.untranslated(lang)) == [], f"{lang}: untranslated patient messages"
    assert messages.placeholder_mismatches(lang) == [], f"{lang}: placeholders differ"
    assert messages.plural_problems(lang) == []


def test_message_extraction_finds_templates_scripts_and_python() -> None:
    found = messages.extract()
    assert any(path.endswith(".html") for uses in found.values() for path, _ in uses)
    assert any(path.endswith(".js") for uses in found.values() for path, _ in uses)
    assert "Page not found" in found


async def test_login_page_has_no_sso_button_without_a_provider(
    client: httpx2.AsyncClient,
) -> None:
    page = await client.get("/login")
    assert "/auth/oidc/login" not in page.text
    assert "Klinik-Konto" not in page.text
    assert (await client.get("/auth/oidc/login")).status_code == 404
    assert (await client.get("/auth/oidc/callback?code=x&state=y")).status_code == 404
