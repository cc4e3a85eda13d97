// The websocket to the signalling server (docs/protocol.md): join, resume after drops,
// and a precise reason when the server refuses us for good.

const RESUMABLE = new Set([1001, 1006, 1011, 1012, 4408, 4429]);
// Close codes that end the session; the value is the reason the page explains.
const FATAL = {
  1000: "left",
  1008: "protocol",
  1009: "protocol",
  4401: "unauthenticated",
  4403: "forbidden",
  4404: "not_found",
  4409: "replaced",
  4410: "closed",
  4419: "full",
};

// Liveness (docs/protocol.md, "Liveness"): a socket cut off by a dead spot stays open, silent,
// until TCP gives up, much later. So a socket that has said nothing for IDLE_MS is asked (one
// `ping`); one that then says nothing within PONG_WAIT_MS is given up and resumed on a new one,
// as after a drop. PROBE_WAIT_MS: the shorter wait after the browser saw the network change.
const IDLE_MS = 10000;
const PONG_WAIT_MS = 5000;
const PROBE_WAIT_MS = 3000;
// A connection attempt not open by then is given up for a fresh one: a SYN lost in a cut is
// sent again only after 1, 2, 4, 8 s, so the attempt would hang on long after the link is back.
// Each attempt given up so gives the next one twice as long, up to OPEN_WAIT_MAX_MS: on a very
// slow line (a rural mobile link with a second or more per round trip, and losses) the
// handshake itself can take longer than 5 s, and attempts cut off at 5 s would never open.
// (Not longer: an attempt whose SYN was lost in a cut hangs on for as long after the link is
// back, unless the browser reports being online again.)
const OPEN_WAIT_MS = 5000;
const OPEN_WAIT_MAX_MS = 10000;
// A deadline that fires this much late: the page itself was frozen or throttled (a phone in a
// pocket, a hidden tab), and what the socket said meanwhile may be queued behind the timer.
const LATE_MS = 2000;

/**
 * One signalling connection. `as`: "patient", "staff" or "guest"; `appointmentId` omitted for the
 * specialist's dashboard. Callbacks: onMessage(msg), onStatus("connecting"|"open"|
 * "reconnecting"), onFatal(reason, code).
 */
export class Signaling {
  constructor({ as, appointmentId, onMessage, onStatus = () => {}, onFatal = () => {} }) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const query = new URLSearchParams({ as });
    if (appointmentId) query.set("appointment", String(appointmentId));
    this.url = `${scheme}//${location.host}/ws?${query}`;
    this.room = Boolean(appointmentId);
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.onFatal = onFatal;
    this.resumeId = null;
    this.resumeUntil = 0;
    this.attempt = 0;
    this.openWait = OPEN_WAIT_MS;
    this.stopped = false;
    this.ws = null;
    this.retryTimer = null;
    // Liveness of this.ws: when it last said anything, the one timer watching it (the idle
    // wait, or a deadline due at this.due), whether a ping is out, whether the browser asked
    // us to confirm the socket.
    this.heardAt = 0;
    this.watchTimer = null;
    this.idling = false;
    this.due = 0;
    this.pinged = false;
    this.graced = false;
    this.confirm = false;
    // A phone unlocked, a tab shown again: its timers may have slept with it.
    this.onVisibility = () => {
      if (document.visibilityState === "visible") this.check();
    };
    document.addEventListener("visibilitychange", this.onVisibility);
  }

  connect() {
    if (this.stopped) return;
    this.onStatus(this.attempt === 0 ? "connecting" : "reconnecting");
    const ws = new WebSocket(this.url);
    this.ws = ws;
    this.deadline(ws, this.openWait, () => this.giveUp(ws));
    // "open" only once the socket has proved itself: a room's `joined`, a dashboard's first
    // message (its ping is answered at once). A server that accepts and then closes (its
    // database or broker out of reach: 1013) is not a connection restored, and the backoff
    // keeps growing meanwhile.
    let proven = false;
    ws.addEventListener("open", () => {
      if (ws !== this.ws) return; // given up meanwhile
      this.openWait = OPEN_WAIT_MS;
      this.heard(ws);
      if (this.room) {
        const resume = this.resumeId && Date.now() < this.resumeUntil ? this.resumeId : undefined;
        this.send(resume ? { type: "join", resume } : { type: "join" });
      } else {
        this.ping(ws, PONG_WAIT_MS);
      }
    });
    ws.addEventListener("message", (event) => {
      if (ws !== this.ws) return;
      this.heard(ws);
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (!proven && (!this.room || message.type === "joined")) {
        proven = true;
        this.attempt = 0;
        this.onStatus("open");
      }
      if (message.type === "pong") return; // liveness only: the page has nothing to do
      if (message.type === "joined") {
        this.resumeId = message.resume_id;
        this.resumeSeconds = message.resume_seconds;
        this.resumeUntil = 0; // the next drop starts a fresh resume window
      }
      this.onMessage(message);
    });
    ws.addEventListener("close", (event) => this.closed(ws, event.code, event.reason));
  }

  closed(ws, code, reason) {
    if (ws !== this.ws || this.stopped) return;
    this.detach();
    if (FATAL[code] && !RESUMABLE.has(code)) {
      this.stop();
      this.onFatal(code === 4403 && reason === "transferred" ? "transferred" : FATAL[code], code);
      return;
    }
    // Anything else (network drop 1006, restart 1001, overload): come back and resume.
    this.retry(code === 4429 ? 3000 : this.backoff());
  }

  backoff() {
    return Math.min(5000, 300 * 2 ** this.attempt);
  }

  retry(delay) {
    if (this.resumeId && !this.resumeUntil) {
      this.resumeUntil = Date.now() + (this.resumeSeconds || 30) * 1000;
    }
    this.onStatus("reconnecting");
    this.attempt += 1;
    this.retryTimer = setTimeout(() => this.connect(), delay + Math.random() * 300);
  }

  /** Gives a socket up that said nothing in time: from now on its events change nothing. */
  giveUp(ws) {
    if (ws !== this.ws || this.stopped) return;
    const opening = ws.readyState === WebSocket.CONNECTING;
    this.detach();
    ws.close();
    // A silent open socket is a drop (1006); an attempt that never opened has waited
    // OPEN_WAIT_MS or more already, longer than any backoff, so the next one starts at once,
    // with a longer wait of its own.
    if (opening) this.openWait = Math.min(this.openWait * 2, OPEN_WAIT_MAX_MS);
    this.retry(opening ? 0 : this.backoff());
  }

  /** The socket said something (or opened): it is alive; the idle wait starts again. */
  heard(ws) {
    this.heardAt = performance.now();
    this.graced = false;
    if (this.confirm) {
      this.confirm = false;
      this.onStatus("open");
    }
    this.pinged = false;
    // A running idle timer reschedules itself from heardAt: no new timer for every message.
    if (!this.idling) this.idle(ws, IDLE_MS);
  }

  idle(ws, ms) {
    clearTimeout(this.watchTimer);
    this.idling = true;
    this.watchTimer = setTimeout(() => {
      const quiet = performance.now() - this.heardAt;
      if (quiet < IDLE_MS) this.idle(ws, IDLE_MS - quiet);
      else this.ping(ws, PONG_WAIT_MS);
    }, ms);
  }

  /** Asks the socket whether it is alive; it has `wait` ms to say anything at all. */
  ping(ws, wait) {
    if (ws !== this.ws || ws.readyState !== WebSocket.OPEN) return;
    if (this.pinged && this.due - Date.now() <= wait) return; // one ping out, due sooner
    if (!this.pinged) {
      this.pinged = true;
      ws.send(JSON.stringify({ type: "ping" }));
    }
    this.deadline(ws, wait, () => this.giveUp(ws));
  }

  deadline(ws, ms, then) {
    clearTimeout(this.watchTimer);
    this.idling = false;
    this.due = Date.now() + ms; // the wall clock: it runs on while the device sleeps
    this.watchTimer = setTimeout(() => {
      if (ws !== this.ws) return;
      if (Date.now() - this.due > LATE_MS && !this.graced) {
        this.graced = true; // judged once the page is awake again, not by a wait it slept through
        this.deadline(ws, ms, then);
        return;
      }
      then();
    }, ms);
  }

  /** Whether this.ws is still alive, asked now (the page woke up, the network changed). */
  check() {
    const ws = this.ws;
    if (this.stopped || !ws || ws.readyState !== WebSocket.OPEN) return;
    // Heard from lately: alive, and no ping more often than the idle interval.
    if (performance.now() - this.heardAt < IDLE_MS) return;
    this.ping(ws, PROBE_WAIT_MS);
  }

  detach() {
    this.ws = null;
    clearTimeout(this.watchTimer);
    this.idling = false;
    this.pinged = false;
    this.graced = false;
    this.confirm = false;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.watchTimer);
    document.removeEventListener("visibilitychange", this.onVisibility);
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  /** Leave for good: tells the server (no resume) and closes. */
  leave() {
    if (this.room) this.send({ type: "leave" });
    this.close();
  }

  close() {
    this.stop();
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000);
  }

  /** For a connectivity change the browser noticed before the socket did: an open socket is
   * asked at once (it may be dead all the same), an attempt still connecting starts afresh. */
  reconnectNow() {
    if (this.stopped) return;
    const ws = this.ws;
    if (ws && ws.readyState === WebSocket.OPEN) {
      this.confirm = true; // "open" once it answers
      this.ping(ws, PROBE_WAIT_MS);
      return;
    }
    if (ws) {
      this.detach();
      ws.close();
    }
    clearTimeout(this.retryTimer);
    this.connect();
  }
}
