"""The rules of the call's adaptive quality (frontend/static/call-quality-policy.js), run by
Node.js on made-up samples: steps down on trouble that lasts, not on a spike; up again after a
quiet stretch, more slowly after a step up that did not hold; audio only proposed at the lowest
step only; the tile's level without flicker. The same rules in a real call over a throttled
line: tests/browser/test_call_quality.py."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from tests.frontend.node import run_module

# Samples as sample() makes them; `feed(state, count, overrides)` adds `count` of them, 2 s apart.
PRELUDE = """
import * as q from "./call-quality-policy.mjs";
let clock = 0;
const good = { sendingVideo: true, available: 2_000_000, loss: 0, pairRtt: 0.02,
  recv: { received: 200, lost: 0, jitter: 0.005, fps: 24 } };
function feed(state, count, change = {}) {
  const steps = [];
  for (let i = 0; i < count; i += 1) {
    clock += q.INTERVAL_MS;
    const recv = change.recv === null ? null : { ...good.recv, ...(change.recv || {}) };
    state = q.assess(state, { ...good, ...change, recv, at: clock });
    steps.push(state.step);
  }
  return { state, steps };
}
"""


def run(script: str, tmp_path: Path) -> Any:
    """Runs ``script`` after PRELUDE in Node.js; what it prints (JSON) comes back."""
    return run_module("call-quality-policy.js", PRELUDE + script, tmp_path)


def test_call_quality_policy_keeps_full_video_on_a_good_line(tmp_path: Path) -> None:
    result = run(
        """
        const { state, steps } = feed(q.initialState(), 60);
        const { send, recv, propose } = state;
        console.log(JSON.stringify({ steps, send, recv, propose }));
        """,
        tmp_path,
    )
    assert set(result["steps"]) == {0}
    assert result["send"] == "good"
    assert result["recv"] == "good"
    assert result["propose"] is False


def test_call_quality_policy_steps_down_to_what_fits_after_a_window(tmp_path: Path) -> None:
    result = run(
        """
        let { state } = feed(q.initialState(), 6);
        const slow = feed(state, 6, { available: 170_000 });
        console.log(JSON.stringify({ steps: slow.steps, send: slow.state.send,
          propose: slow.state.propose, encoding: q.encodingFor(slow.state.step),
          sharing: q.encodingFor(slow.state.step, { sharing: true }) }));
        """,
        tmp_path,
    )
    # One sample of a slow line is not yet trouble that lasts; two of the window's three are, and
    # the step goes straight to the one that fits 170 kbit/s (step 2 needs 160).
    assert result["steps"] == [0, 2, 2, 2, 2, 2]
    assert result["send"] == "fair"
    assert result["propose"] is False
    assert result["encoding"] == {
        "maxBitrate": 200_000,
        "scaleResolutionDownBy": 2,
        "maxFramerate": 10,
    }
    # A shared screen (an ECG, a letter) keeps its resolution: only bitrate and frame rate go.
    assert result["sharing"] == {
        "maxBitrate": 200_000,
        "scaleResolutionDownBy": 1,
        "maxFramerate": 10,
    }


def test_call_quality_policy_ignores_a_spike(tmp_path: Path) -> None:
    result = run(
        """
        let { state } = feed(q.initialState(), 6);
        const steps = [];
        for (let i = 0; i < 10; i += 1) {
          ({ state } = feed(state, 1, { loss: 0.4, available: 90_000, pairRtt: 0.9 }));
          steps.push(state.step);
          ({ state } = feed(state, 2));
          steps.push(state.step);
        }
        console.log(JSON.stringify({ steps, recv: state.recv }));
        """,
        tmp_path,
    )
    assert set(result["steps"]) == {0}


def test_call_quality_policy_proposes_audio_only_at_the_lowest_step_only(tmp_path: Path) -> None:
    result = run(
        """
        let { state } = feed(q.initialState(), 6);
        const lossy = feed(state, 3, { loss: 0.12 });
        const lower = feed(lossy.state, 3, { loss: 0.12 });
        const lowest = feed(lower.state, 3, { loss: 0.2, available: 150_000 });
        const poor = feed(lowest.state, 3, { available: 60_000, loss: 0.3 });
        const still = feed(poor.state, 2, { available: 60_000, loss: 0.3 });
        const calm = feed(still.state, 7, { available: 150_000 });
        console.log(JSON.stringify({
          lossy: [lossy.state.step, lossy.state.propose],
          lower: [lower.state.step, lower.state.propose],
          lowest: [lowest.state.step, lowest.state.propose, lowest.state.send],
          poor: [poor.state.step, poor.state.propose, poor.state.send], still: still.state.propose,
          calm: [calm.state.step, calm.state.propose],
        }));
        """,
        tmp_path,
    )
    # Loss without a bandwidth verdict: one step at a time.
    assert result["lossy"] == [1, False]
    assert result["lower"] == [2, False]
    assert result["lowest"] == [3, False, "poor"]
    assert result["poor"] == [3, True, "poor"]
    assert result["still"] is True
    # Quiet for 10 s: no more proposal; too short to go up.
    assert result["calm"] == [3, False]


def test_call_quality_policy_steps_up_after_a_quiet_stretch(tmp_path: Path) -> None:
    result = run(
        """
        let { state } = feed(q.initialState(), 6);
        ({ state } = feed(state, 3, { available: 110_000 }));
        const down = state.step;
        const up = feed(state, 40);
        console.log(JSON.stringify({ down, steps: up.steps }));
        """,
        tmp_path,
    )
    assert result["down"] == 3
    steps = result["steps"]
    # A window to be sure, then 20 s without trouble, per step.
    first_up = steps.index(2)
    assert 20 / 2 <= first_up + 1 <= 26 / 2
    assert steps.index(1) - first_up >= 20 / 2
    assert steps[-1] < 2
    assert steps == sorted(steps, reverse=True), "never down on a good line"


def test_call_quality_policy_waits_longer_after_a_step_up_that_did_not_hold(
    tmp_path: Path,
) -> None:
    result = run(
        """
        // A line of 150 kbit/s: step 3 fits; the estimate looks good enough to try step 2,
        // which then starves.
        let { state } = feed(q.initialState(), 6);
        ({ state } = feed(state, 3, { available: 130_000 }));
        const steps = [];
        const ups = [];
        for (let i = 0; i < 150; i += 1) {
          const change = state.step === 3 ? { available: 170_000 } : { available: 130_000 };
          const before = state.step;
          ({ state } = feed(state, 1, change));
          if (state.step < before) ups.push(clock / 1000);
          steps.push(state.step);
        }
        console.log(JSON.stringify({ ups, upWait: state.upWait, steps }));
        """,
        tmp_path,
    )
    ups = result["ups"]
    assert len(ups) >= 3
    gaps = [b - a for a, b in itertools.pairwise(ups)]
    assert gaps == sorted(gaps)
    assert gaps[-1] > gaps[0]
    assert result["upWait"] > 20


def test_call_quality_policy_tile_level_without_flicker(tmp_path: Path) -> None:
    result = run(
        """
        let { state } = feed(q.initialState(), 3);
        const first = state.recv;
        const levels = [];
        // Every other sample with high jitter: the median of the window decides, no flicker.
        for (let i = 0; i < 12; i += 1) {
          ({ state } = feed(state, 1, i % 2 ? { recv: { jitter: 0.3 } } : {}));
          levels.push(state.recv);
        }
        const lossyLevels = [];
        let s = state;
        for (let i = 0; i < 4; i += 1) {
          ({ state: s } = feed(s, 1, { recv: { lost: 30, received: 170 } }));
          lossyLevels.push(s.recv);
        }
        const few = feed(s, 5, { recv: { fps: 9 } });
        s = few.state;
        const back = [];
        for (let i = 0; i < 8; i += 1) {
          ({ state: s } = feed(s, 1));
          back.push(s.recv);
        }
        const dead = feed(s, 4, { recv: { received: 0 } });
        const audio = feed(q.initialState(), 4, { recv: { fps: null } });
        console.log(JSON.stringify({ first, levels, lossyLevels, few: few.state.recv, back,
          dead: dead.state.recv, audio: audio.state.recv }));
        """,
        tmp_path,
    )
    assert result["first"] == "good"
    assert set(result["levels"]) == {"good"}
    # Worse after two samples of a worse window.
    assert result["lossyLevels"][-1] == "poor"
    assert result["lossyLevels"][0] == "good"
    # Ten frames a second (a sender at step 2 or 3): fair.
    assert result["few"] == "fair"
    # Better only after three samples of a better window.
    assert result["back"][:3] == ["fair"] * 3
    assert result["back"][-1] == "good"
    assert result["dead"] == "poor"
    assert result["audio"] == "good"


def test_call_quality_policy_audio_only_proposal_waits_after_a_no(tmp_path: Path) -> None:
    result = run(
        """
        const due = (audioOnly, declinedAt, now) =>
          q.proposalDue({ propose: true, audioOnly, declinedAt, now });
        console.log(JSON.stringify([
          due(false, null, 0), due(true, null, 0), due(false, 1_000, 60_000),
          due(false, 1_000, 1_000 + q.PROPOSAL_PAUSE_S * 1000),
          q.proposalDue({ propose: false, audioOnly: false, declinedAt: null, now: 0 }),
          q.worst(["good", "unknown", "fair"]), q.worst(["unknown"]), q.worst([]),
        ]));
        """,
        tmp_path,
    )
    assert result == [True, False, False, True, False, "fair", "unknown", "unknown"]


@pytest.mark.parametrize("sending", [True, False])
def test_call_quality_policy_reads_a_stats_report(tmp_path: Path, sending: bool) -> None:
    result = run(
        f"""
        const report = (at, sent, lost, received, frames) => [
          {{ id: "T1", type: "transport", selectedCandidatePairId: "CP1" }},
          {{ id: "CP0", type: "candidate-pair", state: "failed", availableOutgoingBitrate: 1 }},
          {{ id: "CP1", type: "candidate-pair", nominated: true, state: "succeeded",
            availableOutgoingBitrate: 140_000, currentRoundTripTime: 0.25 }},
          {{ id: "OV", type: "outbound-rtp", kind: "video", framesSent: sent,
            qualityLimitationReason: "bandwidth" }},
          {{ id: "RV", type: "remote-inbound-rtp", kind: "video", fractionLost: 0.08,
            roundTripTime: 0.3 }},
          {{ id: "RA", type: "remote-inbound-rtp", kind: "audio", fractionLost: 0.01,
            roundTripTime: 0.2 }},
          {{ id: "IV", type: "inbound-rtp", kind: "video", packetsLost: lost,
            packetsReceived: received, jitter: 0.04, framesDecoded: frames }},
          {{ id: "IA", type: "inbound-rtp", kind: "audio", packetsLost: 0, packetsReceived: 500,
            jitter: 0.01, framesDecoded: undefined }},
        ];
        const sending = {"true" if sending else "false"};
        const before = q.snapshot(report(10_000, 100, 10, 1000, 200), 10_000);
        const now = q.snapshot(report(12_000, sending ? 130 : 100, 30, 1180, 220), 12_000);
        console.log(JSON.stringify(q.sample(before, now, true)));
        """,
        tmp_path,
    )
    assert result["available"] == 140_000
    assert result["pairRtt"] == 0.25
    assert result["sendingVideo"] is sending
    # What the far end says of our video (or, without video, of our voice).
    assert result["loss"] == (0.08 if sending else 0.01)
    assert result["recv"] == {"received": 180, "lost": 20, "jitter": 0.04, "fps": 10}
