"""The page's own liveness check of its signalling websocket (frontend/static/signaling.js;
docs/protocol.md, Liveness), run by Node.js against a fake WebSocket and a fake clock: a quiet
socket is pinged after the idle interval and never more often; one that then says nothing is
given up and resumed on a new one, whose predecessor's late events change nothing; an attempt
that does not open is replaced; the browser's hints (online, a page shown again) probe at once;
a page that slept through a wait is not judged by it; nothing runs on after the page stops.
The same in real Chromium against the real server: tests/browser/test_signaling_liveness.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.frontend.node import fake_timers, run_module

# A clock that moves only when the script says so (`advance` fires the timers due on the way,
# `sleep` moves it without firing any, as for a frozen page), sockets the script drives
# (`open`, `message`, `drop`) and a document whose visibility it sets (`show`).
PRELUDE = (
    fake_timers(1_000_000)
    + """
Date.now = () => clock;
Object.defineProperty(globalThis, "performance", {
  value: { now: () => clock },
  configurable: true,
});
Math.random = () => 0;
function sleep(ms) { clock += ms; }

const sockets = [];
class FakeSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.listeners = {};
    this.closedByPage = null;
    sockets.push(this);
  }
  addEventListener(type, fn) { (this.listeners[type] ||= []).push(fn); }
  emit(type, event = {}) { for (const fn of this.listeners[type] || []) fn(event); }
  open() { this.readyState = 1; this.emit("open"); }
  message(body) { this.emit("message", { data: JSON.stringify(body) }); }
  drop(code = 1006) { this.readyState = 3; this.emit("close", { code, reason: "" }); }
  send(data) {
    if (this.readyState !== 1) throw new Error("send on a socket that is not open");
    this.sent.push(JSON.parse(data));
  }
  // A dead socket's close event comes late or never: the script sends it with drop().
  close(code) { this.closedByPage = code ?? 0; this.readyState = 3; }
}
globalThis.WebSocket = FakeSocket;
globalThis.location = { protocol: "http:", host: "konsil.test" };
const docListeners = {};
globalThis.document = {
  visibilityState: "visible",
  addEventListener: (type, fn) => { (docListeners[type] ||= []).push(fn); },
  removeEventListener: (type, fn) => {
    docListeners[type] = (docListeners[type] || []).filter((g) => g !== fn);
  },
};
function show(state) {
  document.visibilityState = state;
  for (const fn of docListeners.visibilitychange || []) fn();
}

const { Signaling } = await import("./signaling.mjs");
const statuses = [];
const messages = [];
const live = new Signaling({
  as: "patient",
  appointmentId: 7,
  onMessage: (m) => messages.push(m.type),
  onStatus: (s) => statuses.push(s),
  onFatal: (reason) => statuses.push(`fatal:${reason}`),
});
const pings = (ws) => ws.sent.filter((m) => m.type === "ping").length;
const last = () => sockets[sockets.length - 1];
function joinedOn(ws, resumed = false) {
  ws.open();
  ws.message({ type: "joined", resume_id: "r".repeat(43), resume_seconds: 30, resumed });
}
live.connect();
joinedOn(sockets[0]);
"""
)


def run(script: str, tmp_path: Path) -> Any:
    """Runs ``script`` after PRELUDE in Node.js; what it prints (JSON) comes back."""
    return run_module("signaling.js", PRELUDE + script, tmp_path)


def test_signaling_pings_a_quiet_socket_and_never_more_often_than_the_idle_interval(
    tmp_path: Path,
) -> None:
    result = run(
        """
        const ws = sockets[0];
        const seen = [];
        advance(9_900); seen.push(pings(ws));        // quiet, not yet idle long enough
        advance(200); seen.push(pings(ws));          // 10 s quiet: one ping
        advance(4_000); seen.push(pings(ws));        // no second one while it is out
        ws.message({ type: "pong" });
        advance(9_900); seen.push(pings(ws));        // the pong starts the idle wait again
        advance(200); seen.push(pings(ws));
        ws.message({ type: "pong" });
        for (let i = 0; i < 10; i += 1) {            // traffic: no pings at all
          advance(3_000);
          ws.message({ type: "position", ahead: i });
        }
        seen.push(pings(ws));
        console.log(JSON.stringify({ seen, sockets: sockets.length, messages, statuses }));
        """,
        tmp_path,
    )
    assert result["seen"] == [0, 1, 1, 1, 2, 2]
    assert result["sockets"] == 1
    assert "pong" not in result["messages"]  # liveness only: the page is not bothered
    assert result["statuses"] == ["connecting", "open"]


def test_signaling_gives_a_silent_socket_up_and_resumes_on_a_new_one(tmp_path: Path) -> None:
    result = run(
        """
        const old = sockets[0];
        advance(10_000);                             // the ping goes out
        advance(4_900);
        const before = { sockets: sockets.length, closed: old.closedByPage };
        advance(200);                                // 5 s without a word: given up
        const gaveUp = { closed: old.closedByPage !== null, status: statuses.at(-1) };
        advance(300);                                // the first reconnect's backoff
        const fresh = last();
        fresh.open();
        const join = fresh.sent[0];
        fresh.message({ type: "joined", resume_id: "s".repeat(43), resume_seconds: 30,
          resumed: true });
        // The old socket comes to life late: its words and its close change nothing.
        old.message({ type: "chat", text: "late" });
        old.drop(1006);
        advance(12_000);
        console.log(JSON.stringify({ before, gaveUp, join, statuses, messages,
          sockets: sockets.length, freshPings: pings(fresh), open: fresh.readyState }));
        """,
        tmp_path,
    )
    assert result["before"] == {"sockets": 1, "closed": None}
    assert result["gaveUp"] == {"closed": True, "status": "reconnecting"}
    assert result["join"] == {"type": "join", "resume": "r" * 43}
    assert result["statuses"] == ["connecting", "open", "reconnecting", "reconnecting", "open"]
    assert result["messages"] == ["joined", "joined"]  # no late chat from the old socket
    assert result["sockets"] == 2  # its late close started no reconnect
    assert result["freshPings"] == 1  # the new socket is watched in turn


def test_signaling_replaces_an_attempt_that_does_not_open(tmp_path: Path) -> None:
    result = run(
        """
        sockets[0].drop(1006);                       // a drop: reconnecting
        advance(300);
        const hanging = last();                      // its SYN lost in the cut
        advance(4_900);
        const before = sockets.length;
        advance(100);                                // not open after 5 s: given up,
        const gaveUp = { closed: hanging.closedByPage !== null, sockets: sockets.length };
        const next = last();                         // and the next attempt made at once
        hanging.open();                              // too late: ignored
        joinedOn(next, true);
        console.log(JSON.stringify({ before, gaveUp, sockets: sockets.length,
          lateJoin: hanging.sent.length, join: next.sent[0], statuses }));
        """,
        tmp_path,
    )
    assert result["before"] == 2
    assert result["gaveUp"] == {"closed": True, "sockets": 3}
    assert result["sockets"] == 3
    assert result["lateJoin"] == 0
    assert result["join"] == {"type": "join", "resume": "r" * 43}
    assert result["statuses"][-1] == "open"


def test_signaling_online_probes_an_open_socket_at_once(tmp_path: Path) -> None:
    result = run(
        """
        const ws = sockets[0];
        advance(1_000);
        live.reconnectNow();                         // the browser says: online again
        const probe = pings(ws);
        live.reconnectNow();                         // again: still one ping out
        const still = pings(ws);
        ws.message({ type: "pong" });                // alive: "open" once it answered
        const answered = statuses.at(-1);
        live.reconnectNow();
        advance(2_900);
        const waiting = sockets.length;
        advance(200);                                // silent for 3 s: given up
        console.log(JSON.stringify({ probe, still, answered, waiting,
          closed: ws.closedByPage !== null, status: statuses.at(-1) }));
        """,
        tmp_path,
    )
    assert (result["probe"], result["still"]) == (1, 1)
    assert result["answered"] == "open"
    assert result["waiting"] == 1
    assert (result["closed"], result["status"]) == (True, "reconnecting")


def test_signaling_online_restarts_an_attempt_still_connecting(tmp_path: Path) -> None:
    result = run(
        """
        sockets[0].drop(1006);
        advance(300);
        const hanging = last();
        advance(1_000);
        live.reconnectNow();
        console.log(JSON.stringify({ sockets: sockets.length,
          closed: hanging.closedByPage !== null }));
        """,
        tmp_path,
    )
    assert result == {"sockets": 3, "closed": True}


def test_signaling_a_page_shown_again_probes_a_quiet_socket_only(tmp_path: Path) -> None:
    result = run(
        """
        const ws = sockets[0];
        show("hidden");
        advance(2_000);
        show("visible");                             // heard 2 s ago: no ping
        const recent = pings(ws);
        ws.message({ type: "position", ahead: 1 });
        show("hidden");
        sleep(120_000);                              // a phone in a pocket: its timers slept
        show("visible");
        const woken = pings(ws);
        show("hidden");
        show("visible");                             // one ping out at a time
        const again = pings(ws);
        advance(3_100);                              // no answer: given up
        console.log(JSON.stringify({ recent, woken, again, status: statuses.at(-1) }));
        """,
        tmp_path,
    )
    assert result == {"recent": 0, "woken": 1, "again": 1, "status": "reconnecting"}


def test_signaling_a_wait_the_page_slept_through_is_waited_again(tmp_path: Path) -> None:
    result = run(
        """
        const ws = sockets[0];
        advance(10_000);                             // the ping goes out
        sleep(60_000);                               // frozen: the deadline fires late
        advance(0);
        const kept = ws.closedByPage === null;
        ws.message({ type: "pong" });                // the answer was queued behind the timer
        advance(10_000);                             // the next ping
        sleep(60_000);
        advance(0);
        advance(5_000);                              // silent in the extra wait: given up
        console.log(JSON.stringify({ kept, closed: ws.closedByPage !== null,
          status: statuses.at(-1) }));
        """,
        tmp_path,
    )
    assert result == {"kept": True, "closed": True, "status": "reconnecting"}


def test_signaling_stops_every_timer_on_leave_and_on_a_fatal_close(tmp_path: Path) -> None:
    result = run(
        """
        const ws = sockets[0];
        advance(10_000);                             // a ping out
        live.leave();
        const left = { sent: ws.sent.map((m) => m.type), closed: ws.closedByPage };
        advance(120_000);
        show("hidden");
        show("visible");
        const afterLeave = { sockets: sockets.length, timers: timers.size };

        const other = new Signaling({ as: "staff", onMessage: () => {}, onFatal: () => {} });
        other.connect();
        const dash = last();
        dash.open();                                 // a ping at once, to prove the socket
        dash.message({ type: "pong" });
        advance(10_000);                             // and one after 10 s quiet
        dash.drop(4401);                             // the session ended
        advance(120_000);
        show("hidden");
        show("visible");
        console.log(JSON.stringify({ left, afterLeave, sockets: sockets.length,
          timers: timers.size, dashPings: pings(dash) }));
        """,
        tmp_path,
    )
    assert result["left"] == {"sent": ["join", "ping", "leave"], "closed": 1000}
    assert result["afterLeave"] == {"sockets": 1, "timers": 0}
    assert (result["sockets"], result["timers"], result["dashPings"]) == (2, 0, 2)


def test_signaling_waits_longer_for_each_attempt_that_did_not_open(tmp_path: Path) -> None:
    # A line so slow that a handshake takes more than 5 s must get an attempt that waits long
    # enough; once one opened, the next drop starts at 5 s again.
    result = run(
        """
        sockets[0].drop(1006);
        advance(300);
        const waits = [];
        for (let i = 0; i < 5; i += 1) {             // none of them opens
          const attempt = last();
          const started = Date.now();
          while (last() === attempt) advance(100);
          waits.push(Date.now() - started);
        }
        const slow = last();
        advance(8_000);                              // this one takes 8 s to open
        joinedOn(slow, true);
        const opened = statuses.at(-1);
        slow.drop(1006);                             // and drops later: back to 5 s
        advance(300);
        const again = last();
        const started = Date.now();
        while (last() === again) advance(100);
        console.log(JSON.stringify({ waits, after: Date.now() - started,
          join: slow.sent[0], opened }));
        """,
        tmp_path,
    )
    assert result["waits"] == [5_000, 10_000, 10_000, 10_000, 10_000]
    assert result["after"] == 5_000
    # 53 s after the drop: the 30 s resume window is over, so the page joins afresh.
    assert result["join"] == {"type": "join"}
    assert result["opened"] == "open"


def test_signaling_a_server_that_accepts_and_closes_is_no_connection_restored(
    tmp_path: Path,
) -> None:
    # The server's database or broker is out of reach: it accepts the socket, then closes it
    # with 1013 before the join is answered. The page must not say "open" (the connection
    # notice would flash "restored" on each try), and its backoff must keep growing.
    result = run(
        """
        sockets[0].drop(1006);
        const gaps = [];
        for (let i = 0; i < 5; i += 1) {
          const before = sockets.length;
          const started = Date.now();
          while (sockets.length === before) advance(50);
          gaps.push(Date.now() - started);
          last().open();                             // accepted ...
          last().drop(1013);                         // ... and closed: "unavailable"
        }
        const refused = statuses.slice(2);
        while (sockets.length === 6) advance(50);
        joinedOn(last(), true);                      // the server is back
        console.log(JSON.stringify({ gaps, refused, now: statuses.at(-1) }));
        """,
        tmp_path,
    )
    assert "open" not in result["refused"]
    assert set(result["refused"]) == {"reconnecting"}
    # 300 ms, 600, 1.2 s, 2.4 s, 4.8 s (Math.random is 0 here), rounded up to the 50 ms steps.
    assert result["gaps"] == [300, 600, 1_200, 2_400, 4_800]
    assert result["now"] == "open"


def test_signaling_a_dashboard_is_open_once_it_heard_anything(tmp_path: Path) -> None:
    result = run(
        """
        const seen = [];
        const dash = new Signaling({ as: "staff", onMessage: () => {},
          onStatus: (s) => seen.push(s), onFatal: () => {} });
        dash.connect();
        const ws = last();
        ws.open();
        const afterOpen = [...seen];
        const ping = ws.sent.map((m) => m.type);
        ws.message({ type: "pong" });
        console.log(JSON.stringify({ afterOpen, ping, now: seen.at(-1) }));
        """,
        tmp_path,
    )
    assert result["afterOpen"] == ["connecting"]
    assert result["ping"] == ["ping"]
    assert result["now"] == "open"
