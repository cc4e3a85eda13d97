"""/metrics, request metrics, the access log and draining on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import httpx2
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from structlog.testing import capture_logs

from app.db import utcnow
from app.main import create_app
from app.metrics import HTTP_ERRORS, REGISTRY
from app.observability import drain_on_sigterm
from app.resources import Resources
from app.scheduling.models import RoomState
from app.settings import Settings
from tests.conftest import create_schema, new_client
from tests.factories import Demo, login, make_appointment
from tests.live import run_server


def errors_counted(status: str) -> float:
    return REGISTRY.get_sample_value("konsil_http_errors_total", {"status": status}) or 0.0


async def test_metrics_serves_prometheus_text(client: httpx2.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    for name in ["konsil_ws_connections", "konsil_rooms_active", "konsil_patients_waiting"]:
        assert f"# TYPE {name} gauge" in response.text
    assert "# TYPE konsil_wait_seconds histogram" in response.text


async def test_metrics_patients_waiting_follows_the_database(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await make_appointment(sessions, demo, room_state=RoomState.WAITING, waiting_since=utcnow())
    await make_appointment(sessions, demo, room_state=RoomState.WAITING, waiting_since=utcnow())
    await make_appointment(sessions, demo, room_state=RoomState.IN_CALL)
    await client.get("/metrics")
    assert REGISTRY.get_sample_value("konsil_patients_waiting") == 2
    await login(client, demo.gp)
    waiting = await make_appointment(
        sessions, demo, room_state=RoomState.WAITING, waiting_since=utcnow()
    )
    cancelled = await client.post(f"/api/v1/appointments/{waiting.id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    await client.get("/metrics")
    assert REGISTRY.get_sample_value("konsil_patients_waiting") == 2


async def test_metrics_count_http_errors_by_status(client: httpx2.AsyncClient) -> None:
    before = errors_counted("404")
    assert (await client.get("/no/such/page")).status_code == 404
    assert errors_counted("404") == before + 1


async def test_metrics_do_not_count_successes(client: httpx2.AsyncClient) -> None:
    before = {s.labels["status"] for s in next(iter(HTTP_ERRORS.collect())).samples}
    assert (await client.get("/healthz")).status_code == 200
    after = {s.labels["status"] for s in next(iter(HTTP_ERRORS.collect())).samples}
    assert "200" not in after
    assert before <= after


async def make_app(settings: Settings) -> Starlette:
    await create_schema(settings.database_url)
    return create_app(settings)


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("Bearer wrong-token", 401),
        ("Basic c2NyYXBlOnM=", 401),
        ("Bearer m3trics", 200),
    ],
)
async def test_metrics_token_is_required_when_set(
    make_settings: Callable[..., Settings], authorization: str | None, status: int
) -> None:
    app = await make_app(make_settings(metrics_token="m3trics"))
    async with app.router.lifespan_context(app), new_client(app) as client:
        headers = {"Authorization": authorization} if authorization else {}
        response = await client.get("/metrics", headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.json()["error"]["code"] == "not_authenticated"


async def test_access_log_names_the_route_not_the_query(
    make_settings: Callable[..., Settings],
) -> None:
    app = await make_app(make_settings(log_level="INFO"))
    async with app.router.lifespan_context(app), new_client(app) as client:
        with capture_logs() as logs:
            await client.get("/healthz?patient=Erika+Mustermann")
            await client.get("/unknown/Erika-Mustermann")
    lines = [entry for entry in logs if entry["event"] == "http.request"]
    assert [(e["route"], e["status"]) for e in lines] == [
        ("/healthz", 200),
        ("<unmatched>", 404),
    ]
    assert "Mustermann" not in repr(logs)


async def test_access_log_can_be_switched_off(make_settings: Callable[..., Settings]) -> None:
    app = await make_app(make_settings(log_level="INFO", log_access=False))
    async with app.router.lifespan_context(app), new_client(app) as client:
        with capture_logs() as logs:
            assert (await client.get("/healthz")).status_code == 200
    assert not [entry for entry in logs if entry["event"] == "http.request"]


@pytest.mark.e2e
def test_sigterm_drains_then_stops(tmp_path: Path) -> None:
    with run_server(tmp_path, "--timeout-graceful-shutdown", "5", shutdown_drain_seconds="3") as s:
        assert httpx2.get(s.url + "/readyz").status_code == 200
        s.terminate()
        # Still serving during the drain period, but no longer ready.
        response = httpx2.get(s.url + "/readyz", timeout=2)
        assert response.status_code == 503
        assert response.json()["checks"]["server"] == "draining"
        # uvicorn re-raises SIGTERM after a clean shutdown, so the exit status says "signalled".
        assert s.process.wait(timeout=15) == -signal.SIGTERM
    log = s.log.read_text()
    assert log.index("konsil.draining") < log.index("Shutting down") < log.index("konsil.stopped")


@pytest.mark.e2e
def test_second_sigterm_stops_without_waiting(tmp_path: Path) -> None:
    with run_server(tmp_path, shutdown_drain_seconds="120") as server:
        server.terminate()
        time.sleep(0.3)
        server.terminate()
        assert server.process.wait(timeout=15) == -signal.SIGTERM
    assert "konsil.stopped" in server.log.read_text()


async def test_the_sigterm_handler_leaves_logging_to_the_event_loop() -> None:
    # The handler runs between two bytecodes of the main thread, possibly inside a log call
    # holding the log file's lock; a log call in the handler itself then waited for that lock
    # forever (the server hung at SIGTERM). It must only set the flag and hand over.
    res = SimpleNamespace(settings=SimpleNamespace(shutdown_drain_seconds=3600), draining=False)
    async with drain_on_sigterm(cast(Resources, res)):
        with capture_logs() as logs:
            signal.raise_signal(signal.SIGTERM)  # the handler has run when this returns
            assert res.draining is True
            assert logs == []
            await asyncio.sleep(0)  # the loop runs what the handler handed over
            assert [entry["event"] for entry in logs] == ["konsil.draining"]
