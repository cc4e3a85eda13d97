// The notice at the top of a page while its signalling websocket is being restored
// (signaling.js resumes it by itself, docs/protocol.md "Liveness"): what is happening, that
// nothing needs doing, advice once it lasts, and a short "restored" when it is back. Shared by
// the patient's and the guest's page, the staff call page, the specialist's queue and the GP's
// booking page; each passes its own sentences. The region (frontend/templates/
// _connection_notice.html) is always in the page, role=status, so that a screen reader hears
// each change politely; only the box inside it comes and goes. It sticks to the top of the
// window, so a patient who scrolled down to their camera sees it too.
import { h } from "./dom.js";
import { t } from "./i18n.js";

// A drop shorter than this (a server restart, a resume within a second) shows nothing at all,
// neither the loss nor its end: no flicker, nothing to worry about.
export const SHOW_AFTER_MS = 2000;
// How long "restored" stays before the notice goes away by itself.
export const BACK_MS = 6000;

/** The sentences every page shares; a page's `texts()` may replace any of them. */
export function defaultTexts() {
  return {
    lost: t("Connection lost, restoring…"),
    hint: "",
    long: t("The connection has not come back yet."),
    longHint: "",
    back: t("Connection restored."),
  };
}

/**
 * `el`: the [data-connection-notice] region. `texts()`: the page's sentences now ({lost,
 * hint, long, longHint, back}, read each time the notice changes: they may depend on the
 * page's state, the waiting room or the call). `longAfter()`: seconds after which a loss
 * counts as long (the resume window, for a room: the seat is held that long).
 * `update(status)` takes signaling.js's statuses ("connecting", "open", "reconnecting")
 * and "ended" (the page explains an end itself: the notice goes).
 */
export class ConnectionNotice {
  constructor(el, { texts = () => ({}), longAfter = () => 30 } = {}) {
    this.el = el;
    this.texts = texts;
    this.longAfter = longAfter;
    this.state = "quiet"; // quiet, pending (lost, not shown yet), lost, long, back, ended
    this.timers = [];
  }

  update(status) {
    if (!this.el || this.state === "ended") return;
    if (status === "reconnecting") this.lost();
    else if (status === "open") this.restored();
    else if (status === "ended") this.end();
    // "connecting": the first connection; the page says "Connecting…" itself.
  }

  lost() {
    if (this.state === "pending" || this.state === "lost" || this.state === "long") return;
    const flapping = this.state === "back"; // lost again just after: no flicker in between
    this.clearTimers();
    this.state = "pending";
    if (flapping) this.show("lost");
    else this.later(SHOW_AFTER_MS, () => this.show("lost"));
    this.later(Math.max(SHOW_AFTER_MS, this.longAfter() * 1000), () => this.show("long"));
  }

  restored() {
    if (this.state === "back" || this.state === "quiet") return;
    const shown = this.state === "lost" || this.state === "long";
    this.clearTimers();
    if (!shown) {
      this.show("quiet");
      return;
    }
    this.show("back");
    this.later(BACK_MS, () => this.show("quiet"));
  }

  end() {
    this.clearTimers();
    this.show("quiet");
    this.state = "ended";
  }

  /** Puts the box for `state` into the region (none for quiet). */
  show(state) {
    this.state = state;
    const el = this.el;
    el.dataset.state = state;
    if (state === "quiet") {
      el.replaceChildren();
      return;
    }
    const texts = { ...defaultTexts(), ...this.texts() };
    const [title, hint] = {
      lost: [texts.lost, texts.hint],
      long: [texts.long, texts.longHint],
      back: [texts.back, ""],
    }[state];
    el.replaceChildren(
      h(
        "div",
        { class: `connection-box ${state}` },
        h("span", { class: "connection-icon", "aria-hidden": "true" }),
        h("p", { class: "connection-title" }, title),
        hint ? h("p", { class: "connection-hint" }, hint) : null,
      ),
    );
  }

  later(ms, fn) {
    this.timers.push(setTimeout(fn, ms));
  }

  clearTimers() {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers = [];
  }
}
