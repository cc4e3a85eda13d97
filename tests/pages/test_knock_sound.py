"""The queue page's knock: a small sound file made by ``app.pages.knock`` (the committed file is
what it makes), served from static with the page's audio element, and the states in which the
page stays silent, given by the server."""

from __future__ import annotations

import io
import re
import wave

import httpx2

from app.pages.knock import knock_wav
from app.pages.templating import STATIC
from tests.factories import Demo, login


def test_knock_file_is_what_the_generator_makes() -> None:
    assert (STATIC / "knock.wav").read_bytes() == knock_wav()


def test_knock_is_short_small_and_plain_pcm() -> None:
    data = knock_wav()
    with wave.open(io.BytesIO(data)) as sound:
        seconds = sound.getnframes() / sound.getframerate()
        assert (sound.getnchannels(), sound.getsampwidth()) == (1, 2)
    assert 0.2 < seconds < 0.5
    assert len(data) < 16_000


async def test_knock_queue_page_plays_it_from_static_and_knows_when_to_be_silent(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    await login(client, demo.specialist)
    page = (await client.get("/specialist")).text
    found = re.search(r'<audio src="([^"]+knock\.wav)" preload="auto" data-knock-sound>', page)
    assert found is not None
    # When to be silent comes with every queue snapshot (in_consultation), not from the page.
    queue = (await client.get("/api/v1/queue")).json()
    assert queue["in_consultation"] is False
    sound = await client.get(found.group(1))
    assert sound.status_code == 200
    assert sound.headers["content-type"] in ("audio/wav", "audio/x-wav")
    assert sound.content == knock_wav()
