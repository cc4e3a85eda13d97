"""Input a stranger can send gets a clear 4xx and no traceback: ids beyond the id columns'
range, JSON nested deeper than any request body of the API, references to rows that do not
exist, malformed passkeys, numbers for dates, methods a path does not serve; on SQLite and
PostgreSQL. (The classes of bugs found by tests/test_openapi_schemathesis.py.)"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import httpx2
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.routing import Route

from app.api import nesting_exceeds
from app.settings import Settings
from tests.factories import Demo, login

HUGE_IDS = (2**31, 2**63, 10**30)


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url)


def id_routes(app: Starlette) -> list[tuple[str, str]]:
    """(method, path template) of every route with an integer path parameter."""
    found = []
    for route in app.routes:
        if isinstance(route, Route) and ":int}" in route.path:
            for method in sorted(route.methods or {"GET"}):
                if method != "HEAD":
                    found.append((method, route.path))
    return found


def fill(path: str, value: int) -> str:
    return re.sub(r"\{[a-z_]+:int\}", str(value), path)


async def test_no_id_beyond_the_columns_range_gets_a_server_error(
    app: Starlette, client: httpx2.AsyncClient, demo: Demo, caplog: pytest.LogCaptureFixture
) -> None:
    routes = id_routes(app)
    assert len(routes) >= 12  # appointments, rooms, documents, report, users, pages
    for user in (demo.gp, demo.specialist, demo.admin):
        client.cookies.clear()
        await login(client, user)
        for method, path in routes:
            for value in HUGE_IDS:
                response = await client.request(method, fill(path, value), json={})
                assert response.status_code < 500, (user.role, method, path, value)
    # Reading something that cannot exist is "not found", whoever asks.
    await login(client, demo.gp)
    for value in HUGE_IDS:
        response = await client.get(f"/api/v1/appointments/{value}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


@pytest.mark.parametrize("path", ["/api/v1/auth/login", "/api/v1/patient/session"])
async def test_deeply_nested_json_is_refused_before_parsing(
    client: httpx2.AsyncClient, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    response = await client.post(
        path,
        content=b"[" * 100_000,
        headers={"Content-Type": "application/json", "Origin": "http://127.0.0.1:8000"},
    )
    # Like any malformed body (docs/api.md: 422 invalid_input).
    assert response.status_code == 422
    assert "verschachtelt" in response.json()["error"]["message"]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


def test_nesting_counts_brackets_outside_strings_only() -> None:
    assert not nesting_exceeds(b'{"a": [[1, 2], {"b": [3]}]}', 4)
    assert nesting_exceeds(b'{"a": [[1, 2], {"b": [[3]]}]}', 4)
    # Brackets in strings (with escaped quotes) are text, not nesting.
    assert not nesting_exceeds(b'{"email": "[[[[[[\\"{{{{{{", "password": "]]]]"}', 2)
    assert nesting_exceeds(b"[" * 40, 32)
    assert not nesting_exceeds(b"[" * 32 + b"]" * 32, 32)


def no_traceback(caplog: pytest.LogCaptureFixture) -> bool:
    return not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize(
    ("field", "extra"),
    [("practice_id", {"role": "gp"}), ("specialty_id", {"role": "specialist"})],
)
async def test_an_account_for_a_practice_or_specialty_that_does_not_exist_is_refused(
    client: httpx2.AsyncClient,
    demo: Demo,
    field: str,
    extra: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    await login(client, demo.admin)
    response = await client.post(
        "/api/v1/admin/users",
        json={
            "email": "neu@praxis.example",
            "password": "ein-langes-passwort",
            "display_name": "Neu",
            field: 2**31 - 1,
            **extra,
        },
    )
    assert response.status_code == 422
    assert response.json()["error"]["detail"]["fields"][0]["field"] == field
    assert no_traceback(caplog)


async def test_a_malformed_passkey_is_refused(
    client: httpx2.AsyncClient, demo: Demo, caplog: pytest.LogCaptureFixture
) -> None:
    await login(client, demo.gp)
    for credential in ({}, {"id": "x"}, {"id": "eA", "rawId": "eA", "response": {}}):
        # A challenge for the credential to answer (each one is used once).
        options = await client.post("/api/v1/account/second-factors/webauthn-options")
        assert options.status_code == 200
        response = await client.post(
            "/api/v1/account/second-factors/webauthn", json={"credential": credential}
        )
        assert response.status_code == 422, credential
        assert response.json()["error"]["message"] == "Der Passkey konnte nicht geprüft werden."
    assert no_traceback(caplog)


@pytest.mark.parametrize("day", ["0", "20260101", "1767225600", "2026-1-1"])
async def test_a_day_is_only_taken_as_yyyy_mm_dd(
    client: httpx2.AsyncClient, demo: Demo, day: str
) -> None:
    # pydantic alone reads a number as a Unix time: "0" would be 1970-01-01.
    await login(client, demo.gp)
    response = await client.get("/api/v1/appointments", params={"from": day})
    assert response.status_code == 422
    assert response.json()["error"]["detail"]["fields"][0]["field"] == "from"
    assert (await client.get("/api/v1/appointments", params={"from": "2026-01-01"})).is_success


@pytest.mark.parametrize("method", ["OPTIONS", "PUT", "DELETE"])
async def test_a_method_a_path_does_not_serve_gets_405_naming_all_it_serves(
    client: httpx2.AsyncClient, demo: Demo, method: str
) -> None:
    # GET and POST of /api/v1/specialties are declared apart; Allow names both.
    await login(client, demo.admin)
    response = await client.request(method, "/api/v1/specialties")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
    assert response.json()["error"]["code"] == "http_405"
    head = await client.head("/api/v1/specialties")
    assert head.status_code == 200
    assert head.content == b""


def test_a_refused_setting_does_not_echo_the_secrets_beside_it() -> None:
    # Printed to the console at start-up: it must name the problem, not the passwords.
    with pytest.raises(ValidationError) as refused:
        Settings(
            smtp_url="smtp://konsil:Mail-Passw0rt@mail.example:99999",
            sms_url="webhook+https://sms.example/send",
            sms_secret="Gateway-Secret-" + "x" * 24,
        )
    text = str(refused.value)
    assert "the port must be a number" in text
    assert "Mail-Passw0rt" not in text
    assert "Gateway-Secret" not in text


@pytest.mark.parametrize(
    "setting",
    [
        {"smtp_url": "smtp://konsil:Geheim/xyz@mail.example:587", "mail_from": "k@example.org"},
        {"sms_url": "webhook+https://hook:Geheim/xyz@sms.example/send", "sms_secret": "s" * 40},
    ],
)
def test_a_password_with_a_slash_is_not_quoted_as_the_port(setting: dict[str, str]) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(**setting)  # type: ignore[arg-type]
    assert "percent-encode" in str(refused.value)
    assert "Geheim" not in str(refused.value)
