"""schemathesis against the served /openapi.json: every operation, as each kind of caller.

A real uvicorn serves the app (``tests.live.live_server``) with the demo data, two
appointments, a document and join links. For each role the test signs in through the API and
runs schemathesis's examples, coverage (boundary values, missing and wrong-typed fields,
unexpected methods) and fuzzing phases over the operations the document lists, so operations
added later are covered without touching this file. Generation is deterministic and bounded:
the same requests every run, well under a minute for all roles together.

The checks: no server error, and that the API answers as the document says (status codes,
media types, response bodies and headers, Allow on 405, authentication enforced, malformed
input refused). Not checked: that every schema-valid request is accepted
(``positive_data_acceptance``); rules across fields (exactly one of ``specialist`` and
``specialty``), the password policy, WebAuthn and SDP contents are not expressible in the
document and answer 422.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
import schemathesis
from schemathesis.engine import Status, StopReason, events, from_schema

from app.seed import DEMO_PASSWORD
from app.settings import Settings
from tests.conftest import create_schema
from tests.factories import Demo, link_token, make_appointment, seed
from tests.live import Live, live_server

ROLES = ("gp", "specialist", "admin", "patient", "anonymous")
# Per operation in the fuzzing phase; examples and coverage generate what the schema implies.
FUZZ_EXAMPLES = 6
SEED = 20260
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "ignored_auth",
)
# Operations that end the caller's own session: run with a session they would log it out, and
# every later request would test nothing but 401. The anonymous run covers them; their own
# tests cover what they do (tests/accounts, tests/scheduling).
ENDS_OWN_SESSION = {
    "staff": {
        ("POST", "/api/v1/auth/logout"),
        # schemathesis reuses values from earlier answers: the key GET /auth/sessions lists.
        ("DELETE", "/api/v1/auth/sessions/{key}"),
        # With the admin's own id (coverage tries 1, the admin's) it ends the admin's sessions.
        ("POST", "/api/v1/admin/users/{id}/second-factor-reset"),
    },
    "patient": {("POST", "/api/v1/patient/logout")},
    "anonymous": set(),
}
PDF = b"%PDF-1.7\n" + b"0" * 100 + b"\n%%EOF\n"


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    # Nothing is rate limited away from the run by a test-only setting: the throttles answer
    # 429, which the document lists where they apply.
    return make_settings()


@dataclass
class Caller:
    """How a role's requests are signed: its cookie and CSRF header; who-am-I to ask."""

    headers: dict[str, str] = field(default_factory=dict)
    excluded: set[tuple[str, str]] = field(default_factory=set)
    me: str | None = None


@pytest.mark.parametrize("role", ROLES)
async def test_api_answers_as_its_openapi_document_says(
    settings: Settings, role: str, caplog: pytest.LogCaptureFixture
) -> None:
    await create_schema(settings.database_url)
    async with live_server(settings) as live:
        demo = await seed(live.sessions)
        patient_link = await _records(live, demo)
        caller = await _sign_in(live, demo, role, patient_link)
        with _server_tracebacks(caplog):
            run = await asyncio.to_thread(_run_schemathesis, live.url, caller)
        if caller.me is not None:
            # Still signed in: no request of the run ended the session it tested with.
            async with httpx2.AsyncClient(base_url=live.url, headers=caller.headers) as client:
                assert (await client.get(caller.me)).status_code == 200
    assert run.stop_reason is StopReason.COMPLETED, run.stop_reason
    assert not run.failures, "\n\n".join(run.failures)
    assert run.untested == set(), "operations schemathesis did not test"
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


async def _records(live: Live, demo: Demo) -> str:
    """Two appointments of the demo GP and specialist (ids 1 and 2, the ids coverage tries
    first) and a document, so reads answer real data; a join link for the patient."""
    first = await make_appointment(live.sessions, demo)
    await make_appointment(live.sessions, demo)
    async with httpx2.AsyncClient(base_url=live.url) as gp:
        await _login(gp, demo.gp.email)
        uploaded = await gp.post(
            f"/api/v1/appointments/{first.id}/documents",
            files={"file": ("befund.pdf", PDF, "application/pdf")},
        )
        assert uploaded.status_code == 201, uploaded.text
    return await link_token(live.sessions, first)


async def _sign_in(live: Live, demo: Demo, role: str, patient_link: str) -> Caller:
    if role == "anonymous":
        return Caller()
    async with httpx2.AsyncClient(base_url=live.url) as client:
        if role == "patient":
            redeemed = await client.post("/api/v1/patient/session", json={"token": patient_link})
            assert redeemed.status_code == 200, redeemed.text
            me = await client.get("/api/v1/patient/me")
            cookie, excluded = "konsil_patient", ENDS_OWN_SESSION["patient"]
            csrf, me_path = str(me.json()["csrf_token"]), "/api/v1/patient/me"
        else:
            user = {"gp": demo.gp, "specialist": demo.specialist, "admin": demo.admin}[role]
            csrf = await _login(client, user.email)
            cookie, excluded = "konsil_staff", ENDS_OWN_SESSION["staff"]
            me_path = "/api/v1/auth/me"
        token = client.cookies[cookie]
    return Caller({"Cookie": f"{cookie}={token}", "X-CSRF-Token": csrf}, excluded, me_path)


async def _login(client: httpx2.AsyncClient, email: str) -> str:
    response = await client.post(
        "/api/v1/auth/login", json={"email": email, "password": DEMO_PASSWORD}
    )
    assert response.status_code == 200, response.text
    csrf = str(response.json()["csrf_token"])
    client.headers["X-CSRF-Token"] = csrf
    return csrf


@contextmanager
def _server_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    # uvicorn logs the traceback of an unhandled error to its own logger, which does not
    # propagate to the root logger that caplog listens to.
    server_log = logging.getLogger("uvicorn.error")
    server_log.addHandler(caplog.handler)
    try:
        yield
    finally:
        server_log.removeHandler(caplog.handler)


@dataclass
class Run:
    stop_reason: StopReason | None = None
    failures: list[str] = field(default_factory=list)
    untested: set[str] = field(default_factory=set)


def _run_schemathesis(base_url: str, caller: Caller) -> Run:
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "workers": 1,
            "continue-on-failure": True,
            # Wall-clock health checks would make a slow CI machine fail the run.
            "suppress-health-check": ["too_slow"],
            "headers": caller.headers,
            "generation": {
                "max-examples": FUZZ_EXAMPLES,
                "deterministic": True,
                "database": "none",
                # The session cookie and CSRF token are sent as they are, never made up.
                "with-security-parameters": False,
            },
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                # Needs links between operations, which the document does not declare.
                "stateful": {"enabled": False},
            },
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        }
    )
    # Fetched from the server under test: the document it really serves.
    loaded = schemathesis.openapi.from_url(base_url + "/openapi.json", config=config)
    documented = {
        (method.upper(), path)
        for path, item in loaded.raw_schema["paths"].items()
        for method in item
    }
    assert caller.excluded <= documented, "an excluded operation is no longer in the document"
    excluded = [f"{m} {p}" for m, p in sorted(caller.excluded)]
    schema = loaded.exclude(name=excluded) if excluded else loaded
    run = Run(untested={f"{m} {p}" for m, p in documented - caller.excluded})
    for event in from_schema(schema).execute():
        _record(run, event)
    return run


def _record(run: Run, event: Any) -> None:
    if isinstance(event, events.ScenarioFinished):
        run.untested.discard(event.recorder.label)
        for checks in event.recorder.checks.values():
            for check in checks:
                if check.status is Status.FAILURE and check.failure_info is not None:
                    failure = check.failure_info.failure
                    run.failures.append(
                        f"{event.recorder.label} [{event.phase.value}] {check.name}: "
                        f"{failure.title}\n{failure.message}\n{check.failure_info.code_sample}"
                    )
    elif isinstance(event, events.NonFatalError):
        run.failures.append(f"{event.label}: {event.info.message}")
    elif isinstance(event, events.FatalError):
        raise event.exception
    elif isinstance(event, events.EngineFinished):
        run.stop_reason = event.stop_reason
