// Quality that adapts (KBV Anlage 31b § 5 (1) 7), for the call (call.js): one monitor per peer
// connection reads getStats() every 2 s; the pure rules in call-quality-policy.js decide the
// step of our video on that link (applied with setParameters: each link of the mesh on its
// own), the indicator on that peer's tile and, when even the lowest step is too much, a
// proposal to go on with audio only. The person decides: nothing is switched off for them.
import { t } from "./i18n.js";
import { h, $ } from "./dom.js";
import { qualityBadge } from "./call-tiles.js";
import { updateParameters } from "./sender-parameters.js";
import {
  INTERVAL_MS, assess, encodingFor, initialState, proposalDue, sample, snapshot, worst,
} from "./call-quality-policy.js";

/** The video sender of a connection (it stays when audio only takes its track away). */
function videoSender(pc) {
  const transceiver = pc.getTransceivers().find((tr) => tr.receiver.track?.kind === "video" && tr.sender);
  return transceiver?.sender || null;
}

/** One peer connection: samples, the state of the rules, the step applied to its sender. */
class Monitor {
  constructor(pc, tile, expectVideo, isSharing, onChange) {
    this.pc = pc;
    this.isSharing = isSharing;
    this.tile = tile;
    this.expectVideo = expectVideo;
    this.onChange = onChange;
    this.state = initialState();
    this.last = null;
    this.applied = null;
    this.busy = false;
    this.timer = setInterval(() => this.tick(), INTERVAL_MS);
  }

  async tick() {
    if (this.busy || this.pc.connectionState !== "connected") return;
    this.busy = true;
    try {
      const report = await this.pc.getStats();
      const now = snapshot([...report.values()], Date.now());
      if (this.last) this.state = assess(this.state, sample(this.last, now, this.expectVideo()));
      this.last = now;
      await this.apply();
      this.tile.quality(this.state.recv, this.state.step);
      this.onChange();
    } catch (error) {
      // A connection closed between two samples; the next tick (or stop()) sorts it out.
      console.debug("quality sample", error?.name);
    } finally {
      this.busy = false;
    }
  }

  /** Puts the step on the video sender once the sender has an encoding (after negotiation). */
  async apply() {
    const sender = videoSender(this.pc);
    const sharing = this.isSharing();
    const wanted = `${this.state.step}:${sharing}`;
    if (!sender || this.applied === wanted) return;
    const step = encodingFor(this.state.step, { sharing });
    const applied = await updateParameters(sender, (parameters) => {
      Object.assign(parameters.encodings[0], step);
    });
    if (applied) this.applied = wanted;
  }

  stop() {
    clearInterval(this.timer);
  }
}

/**
 * The call's side of it. `isAudioOnly()`: whether the person already is on audio only;
 * `audioOnly()`: switches to it (call.js toggleAudioOnly); `isSharing()`: a screen is shared.
 */
export class CallQuality {
  constructor(root, { isAudioOnly, audioOnly, isSharing = () => false }) {
    this.isAudioOnly = isAudioOnly;
    this.isSharing = isSharing;
    this.audioOnly = audioOnly;
    this.monitors = new Map();
    this.declinedAt = null;
    this.focusAfter = $("button[data-audio-only]", root);
    this.own = qualityBadge();
    $("[data-self] .tile-label", root)?.append(this.own.el);
    // An alert: announced when it appears; never takes the focus (the call goes on).
    this.text = h("p", { class: "quality-proposal-text", role: "alert" });
    this.banner = h("div", { class: "quality-proposal", dataset: { qualityProposal: "" }, hidden: true },
      this.text,
      h("div", { class: "quality-proposal-actions" },
        h("button", { type: "button", class: "primary", onclick: () => this.accept() }, t("Audio only")),
        h("button", { type: "button", onclick: () => this.decline() }, t("Keep video"))));
    $("[data-stage]", root)?.append(this.banner);
  }

  /** Starts watching a peer's connection; `expectVideo()`: the peer says it sends video. */
  watch(id, pc, tile, expectVideo) {
    this.unwatch(id);
    this.monitors.set(id, new Monitor(pc, tile, expectVideo, this.isSharing, () => this.update()));
  }

  unwatch(id) {
    this.monitors.get(id)?.stop();
    this.monitors.delete(id);
    this.update();
  }

  update() {
    const states = [...this.monitors.values()].map((m) => m.state);
    // Our own sending, as the self-view's indicator: the worst link.
    this.own.set(worst(states.map((s) => s.send)));
    // Not while a screen is shared: audio only would stop the camera, not the shared screen
    // (the person showing an ECG decides to stop it), and the question would come back.
    const due = !this.isSharing() && proposalDue({
      propose: states.some((s) => s.propose), audioOnly: this.isAudioOnly(), declinedAt: this.declinedAt, now: Date.now(),
    });
    if (due === !this.banner.hidden) return;
    const hadFocus = this.banner.contains(document.activeElement);
    this.banner.hidden = !due;
    this.text.textContent = due ? t("The connection is weak. Use audio only?") : "";
    if (hadFocus) this.focusAfter?.focus();
  }

  async accept() {
    this.hide();
    if (!this.isAudioOnly()) await this.audioOnly();
  }

  decline() {
    this.declinedAt = Date.now();
    this.hide();
  }

  hide() {
    const hadFocus = this.banner.contains(document.activeElement);
    this.banner.hidden = true;
    this.text.textContent = "";
    if (hadFocus) this.focusAfter?.focus();
  }

  close() {
    for (const id of [...this.monitors.keys()]) this.unwatch(id);
    this.banner.hidden = true;
  }
}
