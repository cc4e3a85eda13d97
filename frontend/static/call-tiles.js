// The tiles of the call (call.js): one per remote peer with its video (never cropped), its name
// and role, its state as the peer reports it (docs/protocol.md, media_state / peer_state) and a
// speaking outline from its audio level.
import { h } from "./dom.js";
import { t } from "./i18n.js";

const ROLE_LABEL = {
  patient: () => t("Patient"),
  specialist: () => t("Medical specialist"),
  gp: () => t("General practitioner"),
};

const GUEST_KIND = {
  interpreter: () => t("Interpreter"),
  sign_language: () => t("Sign-language interpreter"),
  carer: () => t("Carer"),
  other: () => t("Guest"),
};

/** What an invited guest is there for ("Dolmetscher/in"); "Gast" for a kind not known here. */
export function guestKindLabel(kind) {
  return GUEST_KIND[kind]?.() || t("Guest");
}

/** The role in words (a guest's by its kind); a role this page does not know generically. */
export function roleLabel(role, kind) {
  if (role === "guest") return guestKindLabel(kind);
  return ROLE_LABEL[role]?.() || t("Participant");
}

export const NO_STATE = Object.freeze({
  muted: false, camera_off: false, audio_only: false, screen_sharing: false, connection: "connected",
});

/**
 * Who a peer is: `who` for sentences ("Verbindung zu {who} …") and `label` for the tile
 * ("Prof. Dr. Maria Schulz · Kardiologie", "Dr. Anna Lehmann · Hausärztin bzw. Hausarzt").
 * `known` fills what an older server does not send (the page knows the appointment).
 */
export function describe(peer, known = {}) {
  const extra = known[peer.role] || {};
  const name = peer.name || extra.name || "";
  const detail = peer.detail || extra.detail || "";
  const role = roleLabel(peer.role, peer.kind);
  // A specialist's specialty says who she is to a patient better than "Fachärztin".
  const secondary = peer.role === "specialist" && detail ? detail : role;
  const label = name ? `${name} · ${secondary}` : [role, peer.role === "specialist" ? detail : ""].filter(Boolean).join(" · ");
  return { name, who: name || role, label, title: detail && detail !== secondary ? `${label} (${detail})` : label };
}

export function icon(name) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "icon");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const use = document.createElementNS(ns, "use");
  use.setAttribute("href", `#${name}`);
  svg.append(use);
  return svg;
}

const QUALITY_TEXT = {
  good: () => t("Connection: good"),
  fair: () => t("Connection: fair"),
  poor: () => t("Connection: poor"),
};

/**
 * A connection-quality indicator (call-quality.js): three bars and its words; `set(level)`
 * with "good", "fair", "poor" or "unknown" (hidden).
 */
export function qualityBadge() {
  const text = h("span", { class: "quality-text" });
  const el = h("span", { class: "quality", dataset: { level: "unknown" }, hidden: true },
    h("span", { class: "bars", "aria-hidden": "true" }, h("i"), h("i"), h("i")), text);
  const set = (level) => {
    const words = QUALITY_TEXT[level]?.() || "";
    el.dataset.level = level;
    el.hidden = !words;
    el.title = words;
    text.textContent = words;
  };
  return { el, set };
}

function initials(name) {
  const words = name.replace(/\b(Prof|Dr|med|Dipl)\.\s*/gi, "").split(/\s+/).filter(Boolean);
  return words.length ? (words[0][0] + (words.length > 1 ? words[words.length - 1][0] : "")).toUpperCase() : "?";
}

/** One remote peer's tile. `update()` shows the state; the call decides what it is. */
export class Tile {
  constructor(peer, description) {
    this.description = description;
    this.video = h("video", { autoplay: true, playsinline: true, dataset: { peerRole: peer.role } });
    this.note = h("span", { class: "tile-note" });
    this.placeholder = h("div", { class: "tile-placeholder" },
      h("span", { class: "avatar", "aria-hidden": "true" }, initials(description.who)),
      h("span", { class: "tile-placeholder-name", "aria-hidden": "true" }, description.who),
      this.note);
    this.overlay = h("p", { class: "tile-overlay", role: "status", hidden: true });
    this.muted = h("span", { class: "tile-state", hidden: true }, icon("i-mic-off"), t("Microphone off"));
    this.sharing = h("span", { class: "tile-state", hidden: true }, t("Sharing the screen"));
    this.badge = qualityBadge();
    this.caption = h("figcaption", { class: "tile-label", title: description.title },
      h("span", { class: "tile-name" }, description.label), this.muted, this.sharing, this.badge.el);
    this.figure = h("figure", {
      class: "tile remote", dataset: { peer: peer.id, role: peer.role, speaking: "false", quality: "unknown" },
    }, this.video, this.placeholder, this.overlay, this.caption);
  }

  /**
   * `video`: "live" (frames arrive), "none" (no video track), "stalled" (no new frames for a
   * while) or "waiting" (not yet).
   */
  update(state, { video, lost }) {
    const { figure } = this;
    figure.dataset.muted = String(state.muted);
    figure.dataset.cameraOff = String(state.camera_off);
    figure.dataset.audioOnly = String(state.audio_only);
    figure.dataset.connection = lost ? "reconnecting" : "connected";
    this.muted.hidden = !state.muted;
    this.sharing.hidden = !state.screen_sharing;
    // A shared screen is shown large and whole (call-stage.js), whatever the camera does.
    const sharing = state.screen_sharing;
    figure.dataset.screenSharing = String(sharing);
    // No frozen last frame: without live video the tile shows who it is and why.
    const showVideo = video === "live" && (sharing || (!state.camera_off && !state.audio_only));
    this.placeholder.hidden = showVideo;
    this.video.classList.toggle("off", !showVideo);
    let note = "";
    if (!sharing && (state.audio_only || video === "none")) note = t("Audio only");
    else if (!sharing && state.camera_off) note = t("Camera off");
    else if (video === "stalled") note = t("No picture at the moment");
    this.note.textContent = note;
    this.note.hidden = !note;
    this.overlay.hidden = !lost;
    this.overlay.textContent = lost ? t("Connection to {name} interrupted, restoring…", { name: this.description.who }) : "";
  }

  /**
   * How this peer comes through (call-quality.js): `level` "good", "fair", "poor" or
   * "unknown"; `sendStep`: the step of our video to this peer (data-send-step, for support
   * and tests).
   */
  quality(level, sendStep) {
    this.figure.dataset.quality = level;
    this.figure.dataset.sendStep = String(sendStep);
    this.badge.set(level);
  }

  speaking(on) {
    this.figure.classList.toggle("speaking", on);
    this.figure.dataset.speaking = String(on);
  }
}

/**
 * Audio levels of remote streams (one AudioContext, polled ~8 times a second): calls
 * `onChange(true|false)` when a stream starts or stops carrying speech.
 */
export class Levels {
  constructor() {
    this.context = null;
    this.watched = new Map();
    this.timer = null;
  }

  watch(key, stream, onChange) {
    this.unwatch(key);
    const AudioCtx = window.AudioContext || window.webkitAudioContext;
    if (!AudioCtx || stream.getAudioTracks().length === 0) return;
    if (!this.context) {
      this.context = new AudioCtx();
      // Browsers start it suspended until the person touches the page.
      const resume = () => this.context?.resume().catch(() => {});
      for (const type of ["pointerdown", "keydown"]) document.addEventListener(type, resume, { capture: true });
      resume();
    }
    let source;
    try {
      source = this.context.createMediaStreamSource(stream);
    } catch {
      return;
    }
    const analyser = this.context.createAnalyser();
    analyser.fftSize = 512;
    source.connect(analyser);
    this.watched.set(key, { source, analyser, data: new Uint8Array(analyser.fftSize), on: false, loudAt: 0, onChange });
    if (!this.timer) this.timer = setInterval(() => this.poll(), 120);
  }

  poll() {
    const now = Date.now();
    for (const w of this.watched.values()) {
      w.analyser.getByteTimeDomainData(w.data);
      let sum = 0;
      for (const value of w.data) sum += ((value - 128) / 128) ** 2;
      const rms = Math.sqrt(sum / w.data.length);
      if (rms > 0.03) w.loudAt = now;
      // Hysteresis: on at once, off after half a second of quiet (no flicker between words).
      const on = now - w.loudAt < 500;
      if (on !== w.on) {
        w.on = on;
        w.onChange(on);
      }
    }
  }

  unwatch(key) {
    const w = this.watched.get(key);
    if (!w) return;
    this.watched.delete(key);
    w.source.disconnect();
    if (this.watched.size === 0) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  close() {
    for (const key of [...this.watched.keys()]) this.unwatch(key);
    this.context?.close().catch(() => {});
    this.context = null;
  }
}
