"""The connection check: an aiortc client against the app's echo peer (in-process, loopback)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx2
import pytest
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from av import AudioFrame, VideoFrame
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from app.db import utcnow
from app.main import create_app
from app.metrics import REGISTRY
from app.precheck.echo import EchoRegistry
from app.settings import Settings
from tests.conftest import create_schema, new_client
from tests.factories import Demo, login, make_appointment, patient_session, seed
from tests.waiting import until

pytestmark = pytest.mark.e2e


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(echo_max_concurrent=1)


@pytest.fixture(autouse=True)
def loopback_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    # aioice skips 127.0.0.1 when gathering; both peers live in this process on loopback.
    monkeypatch.setattr("aioice.ice.get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


def echo_peers(app: Starlette) -> EchoRegistry:
    registry = app.state.resources.echo
    assert isinstance(registry, EchoRegistry)
    return registry


async def patient_client(
    app: Starlette, sessions: async_sessionmaker[AsyncSession], demo: Demo, settings: Settings
) -> httpx2.AsyncClient:
    """A client holding a patient session for a fresh appointment (as after redeeming a link)."""
    starts = utcnow() + timedelta(minutes=10)
    appointment = await make_appointment(sessions, demo, starts_at=starts)
    new = await patient_session(sessions, settings, appointment)
    client = new_client(app)
    client.cookies.set("konsil_patient", new.token)
    client.headers["X-CSRF-Token"] = new.principal.csrf_token
    return client


@asynccontextmanager
async def checking_peer() -> AsyncIterator[RTCPeerConnection]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        yield pc
    finally:
        await pc.close()


async def offer_to(client: httpx2.AsyncClient, pc: RTCPeerConnection) -> httpx2.Response:
    await pc.setLocalDescription(await pc.createOffer())
    return await client.post(
        "/api/v1/precheck/offer",
        json={"sdp": pc.localDescription.sdp, "type": pc.localDescription.type},
    )


async def connect(client: httpx2.AsyncClient, pc: RTCPeerConnection) -> None:
    response = await offer_to(client, pc)
    assert response.status_code == 200, response.text
    assert response.json()["type"] == "answer"
    await pc.setRemoteDescription(RTCSessionDescription(**response.json()))


async def test_precheck_echoes_video_and_data_channel_for_a_patient(
    app: Starlette, sessions: async_sessionmaker[AsyncSession], demo: Demo, settings: Settings
) -> None:
    tracks: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()
    pongs: asyncio.Queue[str | bytes] = asyncio.Queue()
    async with await patient_client(app, sessions, demo, settings) as client, checking_peer() as pc:
        pc.addTrack(VideoStreamTrack())
        pc.addTrack(AudioStreamTrack())
        pc.on("track", tracks.put_nowait)
        channel: RTCDataChannel = pc.createDataChannel("rtt")
        channel.on("message", pongs.put_nowait)
        opened = asyncio.Event()
        channel.on("open", opened.set)

        await connect(client, pc)
        await asyncio.wait_for(opened.wait(), 15)
        assert len(echo_peers(app)) == 1

        sent = time.perf_counter()
        channel.send(f"ping {sent}")
        assert await asyncio.wait_for(pongs.get(), 10) == f"ping {sent}"
        rtt = time.perf_counter() - sent
        assert rtt > 0

        kinds = {(await asyncio.wait_for(tracks.get(), 10)).kind for _ in range(2)}
        assert kinds == {"audio", "video"}
        video = next(t for t in pc.getReceivers() if t.track.kind == "video").track
        frames = [await asyncio.wait_for(video.recv(), 10) for _ in range(3)]
        assert all(isinstance(f, VideoFrame) and f.width > 0 for f in frames)
        # Audio comes back as an Opus stream the receiver decodes (encoded by the echo's track).
        audio = next(t for t in pc.getReceivers() if t.track.kind == "audio").track
        sounds = [await asyncio.wait_for(audio.recv(), 10) for _ in range(3)]
        assert all(isinstance(f, AudioFrame) and f.samples > 0 for f in sounds)


async def test_precheck_works_for_staff(app: Starlette, demo: Demo) -> None:
    async with new_client(app) as client, checking_peer() as pc:
        await login(client, demo.gp)
        pc.createDataChannel("rtt")
        await connect(client, pc)
        assert len(echo_peers(app)) == 1


async def test_precheck_requires_a_session(client: httpx2.AsyncClient) -> None:
    async with checking_peer() as pc:
        pc.createDataChannel("rtt")
        response = await offer_to(client, pc)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


async def test_precheck_requires_the_csrf_token(app: Starlette, demo: Demo) -> None:
    async with new_client(app) as client:
        await login(client, demo.gp)
        del client.headers["X-CSRF-Token"]
        response = await client.post("/api/v1/precheck/offer", json={"sdp": "v=0", "type": "offer"})
    assert response.status_code == 403
    assert len(echo_peers(app)) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"sdp": "this is not sdp", "type": "offer"},
        {"sdp": "v=0\r\n", "type": "answer"},
        {"sdp": "", "type": "offer"},
        {"sdp": "v=0", "type": "offer", "extra": 1},
        {"sdp": "x" * 40_000, "type": "offer"},
        {
            "sdp": "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
            "type": "offer",
        },
        {"sdp": "v=0\r\nm=video 9 garbage\r\n", "type": "offer"},
    ],
)
async def test_precheck_rejects_a_bad_offer(
    app: Starlette, demo: Demo, body: dict[str, object]
) -> None:
    async with new_client(app) as client:
        await login(client, demo.gp)
        response = await client.post("/api/v1/precheck/offer", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"
    assert len(echo_peers(app)) == 0


@asynccontextmanager
async def one_check_running(
    app: Starlette, demo: Demo
) -> AsyncIterator[tuple[httpx2.AsyncClient, RTCPeerConnection]]:
    """One GP's check holds the only slot (``echo_max_concurrent`` 1); hands over another
    GP's logged-in client and a peer of theirs ready to offer."""
    async with new_client(app) as gp, new_client(app) as other:
        await login(gp, demo.gp)
        await login(other, demo.other_gp)
        async with checking_peer() as first, checking_peer() as second:
            first.createDataChannel("rtt")
            second.createDataChannel("rtt")
            await connect(gp, first)
            yield other, second


async def test_precheck_limits_concurrent_checks(app: Starlette, demo: Demo) -> None:
    async with one_check_running(app, demo) as (other, second):
        # Refused after waiting a second for the running check to end (it does not).
        response = await offer_to(other, second)
        assert len(echo_peers(app)) == 1
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
    assert response.headers["retry-after"] == "5"


async def test_precheck_waits_briefly_for_a_free_slot(app: Starlette, demo: Demo) -> None:
    async with one_check_running(app, demo) as (other, second):
        registry = echo_peers(app)
        registry.slot_wait = 30  # long enough that only the freed slot can answer it
        [running] = registry.peers()
        waiting = asyncio.create_task(connect(other, second))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        await registry.close_all()  # the running check ends
        await asyncio.wait_for(waiting, 15)
        [answered] = registry.peers()
    assert answered is not running
    assert running.connectionState == "closed"


async def test_precheck_replaces_the_previous_check_of_a_session(
    app: Starlette, demo: Demo
) -> None:
    async with new_client(app) as client, checking_peer() as first, checking_peer() as again:
        await login(client, demo.gp)
        first.createDataChannel("rtt")
        again.createDataChannel("rtt")
        await connect(client, first)
        [old] = echo_peers(app).peers()
        await connect(client, again)
        [new] = echo_peers(app).peers()
    assert new is not old
    assert old.connectionState == "closed"


async def test_precheck_closes_when_the_browser_hangs_up(app: Starlette, demo: Demo) -> None:
    async with new_client(app) as client, checking_peer() as pc:
        await login(client, demo.gp)
        channel = pc.createDataChannel("rtt")
        opened = asyncio.Event()
        channel.on("open", opened.set)
        await connect(client, pc)
        await asyncio.wait_for(opened.wait(), 15)
        [server_pc] = echo_peers(app).peers()
        await pc.close()
        await until(lambda: len(echo_peers(app)) == 0, 15, "the echo peer closed")
    assert server_pc.connectionState == "closed"


async def test_precheck_ends_after_the_time_limit(demo: Demo, app: Starlette) -> None:
    async with new_client(app) as client, checking_peer() as pc:
        await login(client, demo.gp)
        pc.createDataChannel("rtt")
        registry = echo_peers(app)
        registry.max_seconds = 0.5  # the setting's minimum is 5 s; the mechanism is the same
        await connect(client, pc)
        [server_pc] = registry.peers()
        await until(lambda: len(registry) == 0, 15, "the echo peer ended")
    assert server_pc.connectionState == "closed"


async def test_precheck_peers_are_closed_at_shutdown(
    make_settings: Callable[..., Settings],
) -> None:
    cfg = make_settings(echo_max_concurrent=3)
    await create_schema(cfg.database_url)
    application = create_app(cfg)
    clients: list[RTCPeerConnection] = []
    async with application.router.lifespan_context(application):
        demo = await seed(application.state.resources.sessions)
        for user in (demo.gp, demo.other_gp, demo.specialist):
            async with new_client(application) as client:
                await login(client, user)
                pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
                clients.append(pc)
                pc.createDataChannel("rtt")
                await connect(client, pc)
        server_pcs = echo_peers(application).peers()
        assert len(server_pcs) == 3
        assert echo_gauge() == 3
    assert {pc.connectionState for pc in server_pcs} == {"closed"}
    assert echo_gauge() == 0
    for pc in clients:
        await pc.close()


def echo_gauge() -> float | None:
    return REGISTRY.get_sample_value("konsil_echo_checks_active")
