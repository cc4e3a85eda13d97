// The knock alert of the specialist's queue: who is new in the waiting room, whether that
// may make a sound now, and the tab title with the count. A burst of arrivals knocks once;
// while the specialist is in a consultation nothing sounds (Anlage 31b: the doctor consults
// undisturbed by signals of other callers), and only the count changes.

export const KNOCK_GAP_MS = 15000;
// A call page of this browser says it is open every few seconds (BroadcastChannel); one
// not heard from for longer than this is closed.
export const CALL_PAGE_SILENCE_MS = 12000;
export const CHANNEL = "konsil-consultation";

/** The ids in `waiting` that were not in `known` (none on the first snapshot: `known` null). */
export function arrivals(known, waiting) {
  if (known === null) return [];
  return waiting.map((e) => e.appointment_id).filter((id) => !known.has(id));
}

/** Whether the specialist is in a consultation: the server says a room of theirs is admitted
 * or in a call (`in_consultation`, whatever day its slot is on), or one of their call pages
 * in this browser is open. */
export function inConsultation(queue, lastCallPageAt, now) {
  const busy = Boolean(queue?.in_consultation);
  return busy || (lastCallPageAt !== null && now - lastCallPageAt < CALL_PAGE_SILENCE_MS);
}

/** "(2) Queue · Konsil" for two waiting, the plain title for none. */
export function titleWithCount(base, count) {
  return count > 0 ? `(${count}) ${base}` : base;
}

/** At most one knock per `gapMs`, however many patients arrive. */
export class Knocker {
  constructor({ gapMs = KNOCK_GAP_MS } = {}) {
    this.gapMs = gapMs;
    this.lastAt = null;
  }

  /** Whether a knock may sound at `now` (and count it if so). */
  take(now) {
    if (this.lastAt !== null && now - this.lastAt < this.gapMs) return false;
    this.lastAt = now;
    return true;
  }
}

/** Tells the other tabs that a call page is open, every few seconds, until the page goes. */
export function announceCallPage() {
  if (!("BroadcastChannel" in window)) return;
  const channel = new BroadcastChannel(CHANNEL);
  const say = () => channel.postMessage({ type: "call-page" });
  say();
  const timer = setInterval(say, 4000);
  window.addEventListener("pagehide", () => {
    clearInterval(timer);
    channel.postMessage({ type: "call-page-closed" });
    channel.close();
  });
}

/** Calls `onChange(lastSeenAt | null)` whenever a call page of this browser speaks up. */
export function listenForCallPages(onChange) {
  if (!("BroadcastChannel" in window)) return;
  const channel = new BroadcastChannel(CHANNEL);
  channel.addEventListener("message", (event) => {
    if (event.data?.type === "call-page") onChange(Date.now());
    else if (event.data?.type === "call-page-closed") onChange(null);
  });
}
