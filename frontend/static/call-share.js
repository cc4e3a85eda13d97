// Screen sharing in the call (call.js): the specialist or the GP shows an ECG, a scan or a
// letter. The screen goes to every peer of the mesh in place of the camera, through
// RTCRtpSender.replaceTrack on each peer's video sender: no renegotiation. A peer that joins
// or reconnects during a share gets the screen too (attach). Stopping (the button again, or
// the browser's own "Stop sharing") brings back whatever the camera sends: the camera, a
// disabled camera (camera off) or nothing (audio only). The others learn it from
// media_state.screen_sharing (docs/protocol.md); the server refuses it from a patient unless
// the operator allows it, and only pages that render the button may capture the screen
// (Permissions-Policy, app/pages/security.py).
import { h } from "./dom.js";
import { t } from "./i18n.js";
import { updateParameters } from "./sender-parameters.js";

/** Whether this browser can share a screen (phones cannot: no getDisplayMedia). */
export function canShareScreen() {
  return typeof navigator.mediaDevices?.getDisplayMedia === "function";
}

/** The transceiver that carries video to a peer (the one call.js's replaceVideo uses). */
function videoTransceiver(pc) {
  return pc.getTransceivers().find((tr) => tr.receiver.track.kind === "video" && tr.sender && tr.currentDirection !== "stopped") || null;
}

// A screen's text must stay sharp: on a weak line lower the frame rate, not the resolution.
const before = new WeakMap();

function preferResolution(sender, sharing) {
  // Not supported somewhere: the browser's own choice (contentHint "detail" still helps).
  return updateParameters(sender, (params) => {
    if (sharing) {
      if (!before.has(sender)) before.set(sender, params.degradationPreference);
      params.degradationPreference = "maintain-resolution";
      return true;
    }
    if (!before.has(sender)) return false;
    const previous = before.get(sender);
    before.delete(sender);
    if (previous === undefined) delete params.degradationPreference;
    else params.degradationPreference = previous;
    return true;
  });
}

/**
 * The share button and what it sends. `call`: the Call (its peers, stream, media, chat);
 * `button`: [data-share], absent on pages that do not offer sharing; `selfTile`: the
 * self-view, which shows a sentence instead of a mirror of the screen.
 */
export class ScreenShare {
  constructor(call, button, selfTile) {
    this.call = call;
    this.button = button;
    this.selfTile = selfTile;
    this.track = null;
    this.starting = false;
    this.enabled = Boolean(button) && canShareScreen();
    if (!this.enabled) return;
    button.hidden = false;
    selfTile.querySelector("figcaption").before(
      h("p", { class: "tile-placeholder self-sharing" }, t("You are sharing your screen")));
    button.addEventListener("click", () => (this.track ? this.stop() : this.start()));
  }

  /** The track that goes out instead of the camera, or null when not sharing. */
  get sending() {
    return this.track;
  }

  async start() {
    if (this.starting || this.track || this.call.ended) return;
    this.starting = true;
    // While the browser's picker is open (screen readers hear "busy"; tests wait for its end).
    this.button.setAttribute("aria-busy", "true");
    let track;
    try {
      const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
      track = stream.getVideoTracks()[0];
      stream.getAudioTracks().forEach((a) => a.stop());
    } catch (error) {
      // Cancelling the picker changes nothing and needs no message.
      if (error?.name !== "NotAllowedError" && error?.name !== "AbortError") {
        this.call.chat.notice(t("The screen could not be shared."));
      }
      return;
    } finally {
      this.starting = false;
      this.button.removeAttribute("aria-busy");
    }
    if (!track || this.call.ended) {
      track?.stop();
      return;
    }
    if ("contentHint" in track) track.contentHint = "detail";
    // The browser's own "Stop sharing" bar ends the track.
    track.addEventListener("ended", () => this.stop(track));
    this.track = track;
    this.show(true);
    await this.send(track);
  }

  /** Stops sharing (`which`: only if that is still the shared track). */
  async stop(which = this.track) {
    if (!this.track || which !== this.track) return;
    const track = this.track;
    this.track = null;
    track.stop();
    this.show(false);
    if (!this.call.ended) await this.send(this.call.stream.getVideoTracks()[0] || null);
  }

  /** A new peer connection (joined or reconnected), right after the local tracks are added. */
  attach(pc) {
    if (!this.enabled) return;
    const transceiver = videoTransceiver(pc);
    if (!transceiver) return;
    // Without a camera the video line would only receive; it must be able to send the screen
    // later without a new offer.
    if (transceiver.direction === "recvonly") transceiver.direction = "sendrecv";
    if (!this.track) return;
    const { sender } = transceiver;
    sender.replaceTrack(this.track).catch(() => {});
    // The encoding exists once negotiated: then it too prefers resolution.
    const tune = () => {
      if (pc.signalingState !== "stable") return;
      pc.removeEventListener("signalingstatechange", tune);
      if (this.track && sender.track === this.track) preferResolution(sender, true);
    };
    pc.addEventListener("signalingstatechange", tune);
  }

  /** Sends `track` to every peer; the sender's encoding prefers resolution while sharing. */
  async send(track) {
    const sharing = track !== null && track === this.track;
    const senders = [...this.call.peers.values()].map((p) => videoTransceiver(p.pc)?.sender).filter(Boolean);
    await Promise.allSettled(senders.map(async (sender) => {
      await sender.replaceTrack(track);
      await preferResolution(sender, sharing);
    }));
  }

  show(on) {
    this.call.media.screen_sharing = on;
    this.call.setPressed(this.button, on);
    this.selfTile.dataset.sharing = String(on);
    this.call.sendMediaState();
  }

  /** The call is over: the capture ends with it. */
  close() {
    if (!this.track) return;
    this.track.stop();
    this.track = null;
    if (this.button) this.call.setPressed(this.button, false);
    this.selfTile.dataset.sharing = "false";
  }
}
