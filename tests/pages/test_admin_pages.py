"""The admin's pages through the app: who gets them, the admin's home, the navigation, and
that they are behind the second factor like the admin API."""

from __future__ import annotations

from collections.abc import Callable

import httpx2

from app.main import create_app
from app.settings import Settings
from tests.conftest import create_schema, lifespan_in_own_task, new_client
from tests.factories import Demo, login, seed
from tests.pages.test_pages import inline_code

ADMIN_PAGES = [
    "/admin",
    "/admin/accounts",
    "/admin/practices",
    "/admin/specialties",
    "/admin/audit",
]


async def test_admin_pages_render_with_the_admin_navigation(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    await login(client, demo.admin)
    for path in ADMIN_PAGES:
        response = await client.get(path)
        assert response.status_code == 200, path
        assert inline_code(response.text).problems == [], path
        assert f'<a href="{path}" aria-current="page">' in response.text, path
        for link in ADMIN_PAGES:
            assert f'<a href="{link}"' in response.text
    accounts = await client.get("/admin/accounts?lang=en")
    assert "Reset two-factor" not in accounts.text  # the list is drawn by the script
    assert "<h1>Accounts</h1>" in accounts.text


async def test_the_admins_home_is_the_admin_overview(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    await login(client, demo.admin)
    home = await client.get("/")
    assert (home.status_code, home.headers["location"]) == (303, "/admin")
    again = await client.get("/login")
    assert (again.status_code, again.headers["location"]) == (303, "/admin")


async def test_admin_pages_refuse_other_roles_and_send_strangers_to_the_login(
    client: httpx2.AsyncClient, client_factory: Callable[[], httpx2.AsyncClient], demo: Demo
) -> None:
    for path in ADMIN_PAGES:
        anonymous = await client.get(path)
        assert anonymous.status_code == 303
        assert anonymous.headers["location"].startswith("/login?next=")
    for user in (demo.gp, demo.specialist):
        async with client_factory() as other:
            await login(other, user)
            for path in ADMIN_PAGES:
                assert (await other.get(path)).status_code == 403, (user.email, path)


async def test_admins_get_no_call_page(client: httpx2.AsyncClient, demo: Demo) -> None:
    await login(client, demo.admin)
    assert (await client.get("/call/1")).status_code == 403


async def test_admin_pages_and_api_wait_for_the_second_factor(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(second_factor_roles=["admin"])
    await create_schema(settings.database_url)
    app = create_app(settings)
    async with lifespan_in_own_task(app):
        demo = await seed(app.state.resources.sessions)
        async with new_client(app) as client:
            await login(client, demo.admin)  # the password only: the set-up comes next
            page = await client.get("/admin/accounts")
            assert page.status_code == 303
            assert page.headers["location"].startswith("/login?next=")
            api = await client.get("/api/v1/admin/users")
            assert api.status_code == 403
            assert api.json()["error"]["code"] == "second_factor_enrolment_required"
