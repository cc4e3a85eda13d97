"""The admin's account, practice and specialty endpoints: who may call them, re-auth, the rules
for roles and assignments, self-protection, phone numbers, and what the audit log keeps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx2
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from app.accounts.models import AuthSession, Practice, User
from app.audit.models import AuditEvent
from app.db import unit_of_work, utcnow
from app.settings import Settings
from tests.factories import Demo, login


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    """These run on SQLite and on PostgreSQL (foreign keys, partial updates)."""
    return make_settings(database_url=database_url)


@pytest.fixture
async def admin(client: httpx2.AsyncClient, demo: Demo) -> httpx2.AsyncClient:
    await login(client, demo.admin)
    return client


ADMIN_CALLS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/v1/admin/users", None),
    ("POST", "/api/v1/admin/users", {"email": "x@example.org"}),
    ("PATCH", "/api/v1/admin/users/{gp}", {"display_name": "X"}),
    ("POST", "/api/v1/admin/users/{gp}/second-factor-reset", None),
    ("POST", "/api/v1/practices", {"name": "X", "town": "Y"}),
    ("PATCH", "/api/v1/practices/{practice}", {"name": "X"}),
    ("POST", "/api/v1/specialties", {"slug": "neuro", "name_de": "N", "name_en": "N"}),
    ("PATCH", "/api/v1/specialties/{specialty}", {"name_de": "X"}),
    ("GET", "/api/v1/admin/audit", None),
    ("GET", "/api/v1/admin/audit.csv", None),
]


def _url(template: str, demo: Demo) -> str:
    return template.format(gp=demo.gp.id, practice=demo.practice.id, specialty=demo.cardiology.id)


async def test_admin_endpoints_refuse_anonymous_gp_and_specialist(
    client_factory: Callable[[], httpx2.AsyncClient], demo: Demo
) -> None:
    statuses: dict[str, set[int]] = {}
    for who in (None, demo.gp, demo.specialist):
        async with client_factory() as client:
            if who is not None:
                await login(client, who)
            for method, template, body in ADMIN_CALLS:
                answer = await client.request(method, _url(template, demo), json=body)
                statuses.setdefault(who.role.value if who else "anonymous", set()).add(
                    answer.status_code
                )
    assert statuses == {"anonymous": {401}, "gp": {403}, "specialist": {403}}


async def test_admin_changes_without_csrf_token_are_refused(
    admin: httpx2.AsyncClient, demo: Demo
) -> None:
    del admin.headers["X-CSRF-Token"]
    answer = await admin.patch(f"/api/v1/admin/users/{demo.gp.id}", json={"display_name": "X"})
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "csrf_failed"


async def test_account_changes_need_a_recent_second_factor(
    admin: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(AuthSession).values(verified_at=utcnow() - timedelta(minutes=11))
        )
    for method, path, body in [
        ("PATCH", f"/api/v1/admin/users/{demo.gp.id}", {"display_name": "Dr. X"}),
        ("POST", f"/api/v1/admin/users/{demo.gp.id}/second-factor-reset", None),
        (
            "POST",
            "/api/v1/admin/users",
            {
                "email": "neu@praxis.example",
                "password": "ein-langes-passwort",
                "display_name": "Neu",
                "role": "admin",
            },
        ),
    ]:
        answer = await admin.request(method, path, json=body)
        assert answer.status_code == 403, (path, answer.text)
        assert answer.json()["error"]["code"] == "reauth_required"
    async with sessions() as session:
        gp = await session.get(User, demo.gp.id)
    assert gp is not None
    assert gp.display_name == demo.gp.display_name
    # A practice is not an account or a permission: no re-auth.
    renamed = await admin.patch(f"/api/v1/practices/{demo.practice.id}", json={"town": "Cottbus"})
    assert renamed.status_code == 200
    again = await admin.post("/api/v1/auth/reauth", json={"password": "konsil-demo-2026"})
    assert again.status_code == 204, again.text
    changed = await admin.patch(f"/api/v1/admin/users/{demo.gp.id}", json={"display_name": "Dr. X"})
    assert changed.status_code == 200


async def test_list_shows_second_factor_set_up(
    admin: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    from app.accounts.models import FactorKind, SecondFactor

    assert demo.specialist.id is not None
    async with unit_of_work(sessions) as session:
        session.add(
            SecondFactor(
                user_id=demo.specialist.id,
                kind=FactorKind.TOTP,
                label="Telefon",
                confirmed_at=utcnow(),
            )
        )
        # Started, never confirmed: not set up.
        session.add(SecondFactor(user_id=demo.gp.id or 0, kind=FactorKind.TOTP, label="x"))
    users = {u["id"]: u for u in (await admin.get("/api/v1/admin/users")).json()}
    assert users[demo.specialist.id]["second_factor"] is True
    assert users[demo.gp.id]["second_factor"] is False
    assert users[demo.gp.id]["single_sign_on"] is False


async def test_gp_becomes_specialist_and_is_signed_out(
    admin: httpx2.AsyncClient,
    client_factory: Callable[[], httpx2.AsyncClient],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with client_factory() as gp:
        await login(gp, demo.gp)
        answer = await admin.patch(
            f"/api/v1/admin/users/{demo.gp.id}",
            json={"role": "specialist", "specialty_id": demo.dermatology.id},
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["role"], body["specialty_id"], body["practice_id"]) == (
            "specialist",
            demo.dermatology.id,
            None,  # the practice belonged to the old role
        )
        assert (await gp.get("/api/v1/auth/me")).status_code == 401
    async with sessions() as session:
        rows = (
            (
                await session.execute(
                    select(AuditEvent)
                    .where(col(AuditEvent.action).startswith("user."))
                    .order_by(col(AuditEvent.id))
                )
            )
            .scalars()
            .all()
        )
    assert [(r.action, r.actor_id, r.detail) for r in rows] == [
        ("user.role_changed", demo.admin.id, {"target": demo.gp.id}),
        ("user.practice_changed", demo.admin.id, {"target": demo.gp.id, "practice_id": None}),
        (
            "user.specialty_changed",
            demo.admin.id,
            {"target": demo.gp.id, "specialty_id": demo.dermatology.id},
        ),
    ]


async def test_renaming_or_moving_keeps_the_sessions(
    admin: httpx2.AsyncClient, client_factory: Callable[[], httpx2.AsyncClient], demo: Demo
) -> None:
    async with client_factory() as specialist:
        await login(specialist, demo.specialist)
        answer = await admin.patch(
            f"/api/v1/admin/users/{demo.specialist.id}",
            json={"display_name": "Prof. Dr. M. Schulz", "specialty_id": demo.dermatology.id},
        )
        assert answer.status_code == 200, answer.text
        me = await specialist.get("/api/v1/auth/me")
        assert me.status_code == 200
        assert me.json()["display_name"] == "Prof. Dr. M. Schulz"
        assert me.json()["specialty_id"] == demo.dermatology.id


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "gp"}, "practice_id"),  # a specialist becoming a GP needs a practice
        ({"practice_id": 1}, "practice_id"),  # a specialist has no practice
        ({"specialty_id": None}, "specialty_id"),  # nor can lose the specialty
        ({"specialty_id": 999_999}, "specialty_id"),
        ({"role": "gp", "practice_id": 999_999}, "practice_id"),
        ({}, ""),
        ({"role": None}, ""),
        ({"display_name": ""}, "display_name"),
        ({"is_active": "maybe"}, "is_active"),
        ({"role": "superuser"}, "role"),
        ({"email": "new@example.org"}, "email"),  # not changeable here
    ],
)
async def test_invalid_account_changes_get_422_and_change_nothing(
    admin: httpx2.AsyncClient,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
    body: dict[str, Any],
    field: str,
) -> None:
    answer = await admin.patch(f"/api/v1/admin/users/{demo.specialist.id}", json=body)
    assert answer.status_code == 422, answer.text
    fields = [f["field"] for f in answer.json()["error"]["detail"]["fields"]]
    assert field in fields or (field == "" and fields == [""])
    async with sessions() as session:
        user = await session.get(User, demo.specialist.id)
    assert user is not None
    assert (user.role.value, user.specialty_id, user.practice_id) == (
        "specialist",
        demo.cardiology.id,
        None,
    )


async def test_unknown_or_impossible_account_ids(admin: httpx2.AsyncClient) -> None:
    assert (
        await admin.patch("/api/v1/admin/users/999999", json={"is_active": False})
    ).status_code == 404
    assert (
        await admin.patch(f"/api/v1/admin/users/{2**63}", json={"is_active": False})
    ).status_code == 404
    assert (
        await admin.patch("/api/v1/admin/users/0", json={"is_active": False})
    ).status_code == 422


async def test_admin_cannot_take_own_admin_role_or_deactivate_self(
    admin: httpx2.AsyncClient, demo: Demo
) -> None:
    own = f"/api/v1/admin/users/{demo.admin.id}"
    demote = await admin.patch(own, json={"role": "gp", "practice_id": demo.practice.id})
    assert demote.status_code == 409
    deactivate = await admin.patch(own, json={"is_active": False})
    assert deactivate.status_code == 409
    renamed = await admin.patch(own, json={"display_name": "Admin Klinikum", "role": "admin"})
    assert renamed.status_code == 200
    me = (await admin.get("/api/v1/auth/me")).json()
    assert (me["role"], me["display_name"]) == ("admin", "Admin Klinikum")


async def test_deactivated_account_is_signed_out_and_reactivated(
    admin: httpx2.AsyncClient, client_factory: Callable[[], httpx2.AsyncClient], demo: Demo
) -> None:
    async with client_factory() as gp:
        await login(gp, demo.gp)
        off = await admin.patch(f"/api/v1/admin/users/{demo.gp.id}", json={"is_active": False})
        assert off.status_code == 200
        assert off.json()["is_active"] is False
        assert (await gp.get("/api/v1/auth/me")).status_code == 401
        refused = await gp.post(
            "/api/v1/auth/login", json={"email": demo.gp.email, "password": "konsil-demo-2026"}
        )
        assert refused.status_code == 401
        on = await admin.patch(f"/api/v1/admin/users/{demo.gp.id}", json={"is_active": True})
        assert on.json()["is_active"] is True
        await login(gp, demo.gp)


async def test_create_account_checks_practice_exists(admin: httpx2.AsyncClient) -> None:
    body = {
        "email": "neu@praxis.example",
        "password": "ein-langes-passwort",
        "display_name": "Dr. Neu",
        "role": "gp",
        "practice_id": 999_999,
    }
    missing = await admin.post("/api/v1/admin/users", json=body)
    assert missing.status_code == 422
    assert missing.json()["error"]["detail"]["fields"][0]["field"] == "practice_id"


async def test_create_gp_account_lists_with_second_factor_not_set_up(
    admin: httpx2.AsyncClient, demo: Demo
) -> None:
    body = {
        "email": "Neu@Praxis.example",
        "password": "ein-langes-passwort",
        "display_name": "Dr. Neu",
        "role": "gp",
        "practice_id": demo.practice.id,
    }
    created = await admin.post("/api/v1/admin/users", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["email"] == "neu@praxis.example"
    assert created.json()["second_factor"] is False


# --- practices ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("03563 123456", "+493563123456"),
        ("+49 (3563) 12-34-56", "+493563123456"),
        ("0049 30 1234567", "+49301234567"),
        ("0151 23456789", "+4915123456789"),
        ("+48 22 123 45 67", "+48221234567"),
    ],
)
async def test_practice_phone_is_stored_in_e164(
    admin: httpx2.AsyncClient, typed: str, stored: str
) -> None:
    created = await admin.post(
        "/api/v1/practices", json={"name": "Praxis Nord", "town": "Guben", "phone": typed}
    )
    assert created.status_code == 201, created.text
    assert created.json()["phone"] == stored


@pytest.mark.parametrize("typed", ["12", "110", "phone", "+49 0000", "0" * 41])
async def test_invalid_phone_gets_422_and_changes_nothing(
    admin: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession], typed: str
) -> None:
    answer = await admin.patch(
        f"/api/v1/practices/{demo.practice.id}", json={"name": "Umbenannt", "phone": typed}
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["detail"]["fields"][0]["field"] == "phone"
    async with sessions() as session:
        practice = await session.get(Practice, demo.practice.id)
    assert practice is not None
    assert (practice.name, practice.phone) == (demo.practice.name, None)


async def test_practice_patch_changes_only_what_is_sent(
    admin: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    path = f"/api/v1/practices/{demo.practice.id}"
    with_phone = await admin.patch(path, json={"phone": "03563 123456"})
    assert with_phone.json() == {
        "id": demo.practice.id,
        "name": demo.practice.name,
        "town": demo.practice.town,
        "phone": "+493563123456",
        "bsnr": None,
    }
    renamed = await admin.patch(path, json={"town": "Spremberg/Grodk"})
    assert renamed.json()["phone"] == "+493563123456"
    cleared = await admin.patch(path, json={"phone": ""})
    assert cleared.json()["phone"] is None
    assert (await admin.patch(path, json={})).status_code == 422
    assert (await admin.patch(path, json={"name": None})).status_code == 422
    assert (await admin.patch("/api/v1/practices/999999", json={"name": "X"})).status_code == 404
    listed = (await admin.get("/api/v1/practices")).json()
    assert {"phone"} <= set(listed[0])
    async with sessions() as session:
        actions = (
            (
                await session.execute(
                    select(AuditEvent.detail).where(col(AuditEvent.action) == "practice.updated")
                )
            )
            .scalars()
            .all()
        )
    assert actions == [{"practice_id": demo.practice.id}] * 3


# --- specialties --------------------------------------------------------------------------


async def test_specialty_is_renamed_and_keeps_its_slug(
    admin: httpx2.AsyncClient, demo: Demo
) -> None:
    path = f"/api/v1/specialties/{demo.cardiology.id}"
    renamed = await admin.patch(path, json={"name_de": "Kardiologie und Angiologie"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json() == {
        "id": demo.cardiology.id,
        "slug": "kardiologie",
        "name_de": "Kardiologie und Angiologie",
        "name_en": "Cardiology",
    }
    assert (await admin.patch(path, json={})).status_code == 422
    assert (await admin.patch(path, json={"slug": "herz"})).status_code == 422
    assert (await admin.patch(path, json={"name_en": ""})).status_code == 422
    assert (
        await admin.patch("/api/v1/specialties/999999", json={"name_de": "X"})
    ).status_code == 404
    created = await admin.post(
        "/api/v1/specialties",
        json={"slug": "neurologie", "name_de": "Neurologie", "name_en": "Neurology"},
    )
    assert created.status_code == 201


async def test_doctor_numbers_lanr_of_doctors_and_bsnr_of_practices(
    admin: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """LANR (check digit verified) on GP and specialist accounts, never on an admin's; BSNR
    (nine digits) on practices; "" or null removes either; a wrong one is 422, nothing kept."""
    gp = f"/api/v1/admin/users/{demo.gp.id}"
    given = await admin.patch(gp, json={"lanr": "123456 601"})
    assert given.status_code == 200, given.text
    assert given.json()["lanr"] == "123456601"
    wrong = await admin.patch(gp, json={"lanr": "123456701", "display_name": "Neu"})
    assert wrong.status_code == 422
    assert "Prüfziffer" in wrong.text
    assert (await admin.get("/api/v1/admin/users")).json()[0]["display_name"] != "Neu"
    assert (await admin.patch(gp, json={"lanr": "12345"})).status_code == 422
    made_admin = await admin.patch(
        f"/api/v1/admin/users/{demo.specialist.id}", json={"role": "admin", "lanr": "123456601"}
    )
    assert made_admin.status_code == 422
    assert "lanr" in made_admin.text
    new = {"email": "lanr@praxis.example", "password": "lang-genug-123",
           "display_name": "Dr. Nummer", "role": "admin", "lanr": "123456601"}  # fmt: skip
    assert (await admin.post("/api/v1/admin/users", json=new)).status_code == 422
    as_gp = await admin.post(
        "/api/v1/admin/users",
        json={**new, "role": "gp", "practice_id": demo.practice.id},
    )
    assert (as_gp.status_code, as_gp.json()["lanr"]) == (201, "123456601")
    removed = await admin.patch(gp, json={"lanr": ""})
    assert removed.json()["lanr"] is None

    practice = f"/api/v1/practices/{demo.practice.id}"
    with_bsnr = await admin.patch(practice, json={"bsnr": "72 123 4500"})
    assert with_bsnr.json()["bsnr"] == "721234500"
    assert (await admin.patch(practice, json={"bsnr": "72-1234"})).status_code == 422
    assert (await admin.patch(practice, json={"bsnr": None})).json()["bsnr"] is None
    created = await admin.post(
        "/api/v1/practices", json={"name": "Praxis Süd", "town": "Forst", "bsnr": "721234599"}
    )
    assert created.json()["bsnr"] == "721234599"
    async with sessions() as session:
        actions = (
            (
                await session.execute(
                    select(AuditEvent.action).where(col(AuditEvent.action) == "user.lanr_changed")
                )
            )
            .scalars()
            .all()
        )
    assert len(actions) == 2  # given, removed (the refused ones changed nothing)
