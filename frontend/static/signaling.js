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
    this.stopped = false;
    this.ws = null;
    this.retryTimer = null;
  }

  connect() {
    if (this.stopped) return;
    this.onStatus(this.attempt === 0 ? "connecting" : "reconnecting");
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.addEventListener("open", () => {
      this.attempt = 0;
      if (this.room) {
        const resume = this.resumeId && Date.now() < this.resumeUntil ? this.resumeId : undefined;
        this.send(resume ? { type: "join", resume } : { type: "join" });
      }
      this.onStatus("open");
    });
    ws.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
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
    if (FATAL[code] && !RESUMABLE.has(code)) {
      this.stopped = true;
      this.onFatal(code === 4403 && reason === "transferred" ? "transferred" : FATAL[code], code);
      return;
    }
    // Anything else (network drop 1006, restart 1001, overload): come back and resume.
    if (this.resumeId && !this.resumeUntil) {
      this.resumeUntil = Date.now() + (this.resumeSeconds || 30) * 1000;
    }
    this.onStatus("reconnecting");
    this.attempt += 1;
    const base = code === 4429 ? 3000 : Math.min(5000, 300 * 2 ** (this.attempt - 1));
    this.retryTimer = setTimeout(() => this.connect(), base + Math.random() * 300);
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
    this.stopped = true;
    clearTimeout(this.retryTimer);
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000);
  }

  /** For a connectivity change the browser noticed before the socket did. */
  reconnectNow() {
    if (this.stopped) return;
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.onStatus("open");
      return;
    }
    clearTimeout(this.retryTimer);
    this.connect();
  }
}
