"""The pure presence rule: in a consultation whatever the toggle; on duty only while the
session that set it is live; away otherwise."""

from __future__ import annotations

import pytest

from app.presence.models import Chosen
from app.presence.rules import Counts, Presence, count, effective


@pytest.mark.parametrize(
    ("chosen", "live", "consulting", "expected"),
    [
        (None, True, False, Presence.AWAY),  # never set
        (None, False, True, Presence.IN_CALL),  # in a call without ever setting it
        (Chosen.AWAY, True, False, Presence.AWAY),
        (Chosen.AWAY, True, True, Presence.IN_CALL),  # the call wins over the toggle
        (Chosen.ON_DUTY, True, False, Presence.ON_DUTY),
        (Chosen.ON_DUTY, True, True, Presence.IN_CALL),
        (Chosen.ON_DUTY, False, False, Presence.AWAY),  # the session that set it is over
        (Chosen.ON_DUTY, False, True, Presence.IN_CALL),
    ],
)
def test_presence_effective(
    chosen: Chosen | None, live: bool, consulting: bool, expected: Presence
) -> None:
    assert effective(chosen=chosen, session_live=live, in_consultation=consulting) is expected


def test_presence_count_leaves_the_away_out() -> None:
    found = [Presence.ON_DUTY, Presence.AWAY, Presence.IN_CALL, Presence.ON_DUTY]
    assert count(found) == Counts(on_duty=2, in_call=1)
    assert count([]) == Counts(on_duty=0, in_call=0)
