// The call, shared by the patient, specialist and GP pages: one RTCPeerConnection per peer
// (a mesh of up to four), signalling over the websocket (docs/protocol.md), a tile per peer
// with name, role and state (call-tiles.js), the self-view beside the tiles, the timer and full
// screen (call-stage.js), the chat that survives a reload (call-chat.js), and what happened
// when a peer drops, leaves or is sent back.
//
// Toggle buttons (mute, camera off, audio only, screen sharing, full screen) follow one
// pattern, WAI-ARIA's toggle button: the label names what the button switches on and never
// changes ("Stummschalten", "Kamera aus", "Nur Ton", "Bildschirm teilen", "Vollbild");
// aria-pressed="true" says it is on (muted, camera off, …). A screen reader says
// "Stummschalten, Ein/gedrückt"; sighted people see the pressed style, a crossed-out icon
// and the state on their own tile. Never swap the label for the opposite action.
import { Signaling } from "./signaling.js";
import { t } from "./i18n.js";
import { $ } from "./dom.js";
import { getMedia, playVideo } from "./media.js";
import { api } from "./api.js";
import { Tile, Levels, NO_STATE, describe } from "./call-tiles.js";
import { StageLayout, CallTimer, bindFullscreen } from "./call-stage.js";
import { ChatLog } from "./call-chat.js";
import { ScreenShare } from "./call-share.js";
import { CallQuality } from "./call-quality.js";

export const FATAL_MESSAGES = {
  left: () => t("You have left the consultation."),
  closed: () => t("The consultation has ended."),
  unauthenticated: () => t("Your session has ended. Please open your link again or log in."),
  forbidden: () => t("You are not a participant of this consultation."),
  transferred: () => t("The consultation was handed to a colleague."),
  not_found: () => t("This consultation does not exist."),
  replaced: () => t("The consultation was opened in another window or tab."),
  full: () => t("The video consultation already has four participants."),
  protocol: () => t("A technical error occurred. Please reload the page."),
};

// Roles of which a room has one: a newcomer in such a role replaces a stale peer (a reload).
const SINGLE_ROLES = new Set(["patient", "specialist", "gp", "guest"]);

/** Whether the media path failed: Chromium may say so only in connectionState (recoverPath). */
function pathFailed(pc) {
  return pc.iceConnectionState === "failed" || pc.connectionState === "failed";
}

function departure(who, reason) {
  if (reason === "left") return t("{name} has left the call.", { name: who });
  if (reason === "lost") return t("The connection to {name} was lost.", { name: who });
  if (reason === "sent_back") return t("{name} is back in the waiting room.", { name: who });
  return t("{name} is no longer in the call.", { name: who });
}

/**
 * A participant's call. `root` holds the call markup (frontend/templates/_call.html).
 * `known`: what the page knows of the others ({specialist: {name, detail}, patient: {name}})
 * for an older server that does not say it. Events to the page: onRoomState(state,
 * waitingSince), onJoined(msg), onEnd(reason), onPeers(peers), onWaiting(msg) (the patient's
 * `position` and `delay`), onGuest(msg) (`guest_status`), onRefused(message) (an `error` the page may explain),
 * onConnection(status) (the websocket's: "connecting", "open", "reconnecting", and "ended";
 * for the page's connection-notice.js). `hangup()` leaves; staff pages end the consultation
 * through the API.
 */
export class Call {
  constructor(root, { appointmentId, as, stream, audioOnly = false, known = {}, ...hooks }) {
    this.root = root;
    this.appointmentId = appointmentId;
    this.stream = stream;
    this.known = known;
    this.hooks = hooks;
    this.media = {
      muted: false, camera_off: false, audio_only: audioOnly || stream.getVideoTracks().length === 0, screen_sharing: false,
    };
    this.peers = new Map();
    this.iceServers = [];
    this.iceFetchedAt = 0;
    this.iceTtl = 3600;
    this.self = null;
    this.role = as === "patient" ? "patient" : null;
    this.roomState = null;
    this.resumeSeconds = 30;
    this.specialistGone = false;
    this.adviceTimer = null;
    this.noticeTimer = null;
    this.ended = false;
    this.wsStatus = "connecting";
    const el = (name) => $(`[data-${name}]`, root);
    this.el = {
      main: el("call-main"), stage: el("stage"), status: el("call-status"), remote: el("remote"),
      placeholder: el("placeholder"), placeholderText: el("placeholder-text"), advice: el("placeholder-advice"),
      notice: el("stage-notice"), self: el("self"), selfMuted: el("self-muted"), local: el("local"),
      unmute: el("unmute"), mute: el("mute"), camera: el("camera"), audioOnly: el("audio-only"),
      fullscreen: el("fullscreen"), hangup: el("hangup"), chatLog: el("chat-log"), chatForm: el("chat-form"),
    };
    this.levels = new Levels();
    this.chat = new ChatLog(this.el.chatLog, `konsil.chat.${appointmentId}`);
    this.timer = new CallTimer(el("call-timer-box"), el("call-timer"), `konsil.call-start.${appointmentId}`);
    this.stageLayout = new StageLayout(this.el.stage, this.el.remote);
    this.fullscreen = bindFullscreen(this.el.fullscreen, this.el.main);
    this.share = new ScreenShare(this, el("share"), this.el.self);
    this.quality = new CallQuality(root, {
      isAudioOnly: () => this.media.audio_only,
      audioOnly: () => this.toggleAudioOnly(),
      isSharing: () => this.media.screen_sharing,
    });
    this.signaling = new Signaling({
      as,
      appointmentId,
      onMessage: (m) => this.handle(m).catch((e) => console.error("signalling", m.type, e)),
      onStatus: (s) => this.setWsStatus(s),
      onFatal: (reason) => this.finish(reason),
    });
    this.bindControls();
    this.showLocal();
    this.frameTimer = setInterval(() => this.checkFrames(), 1000);
    window.addEventListener("online", () => this.signaling.reconnectNow());
    window.addEventListener("offline", () => this.setWsStatus("reconnecting"));
  }

  start() {
    this.signaling.connect();
  }

  /** Staff: let the waiting patient in (same as POST /api/v1/rooms/{id}/admit). */
  admit() {
    return this.signaling.send({ type: "admit" });
  }

  /** Specialist: the patient goes back to the waiting room (send_back, docs/protocol.md). */
  sendBack() {
    return this.signaling.send({ type: "send_back" });
  }

  /** Whether leaving the page now would drop a call with somebody. */
  inCall() {
    return !this.ended && this.peers.size > 0;
  }

  // ---------------------------------------------------------------- signalling messages
  async handle(message) {
    switch (message.type) {
      case "joined":
        return this.joined(message);
      case "room_state":
        return this.roomStateChanged(message.state, message.waiting_since);
      case "peer_joined":
        return this.peerJoined(message.peer, message.offer);
      case "peer_state":
        return this.peerState(message);
      case "peer_left":
        return this.peerLeft(message.peer_id, message.reason);
      case "offer":
        return this.offerFrom(message.from, message.sdp);
      case "answer":
        return this.peers.get(message.from)?.pc.setRemoteDescription({ type: "answer", sdp: message.sdp })
          .then(() => this.flushCandidates(this.peers.get(message.from)));
      case "candidate":
        return this.candidateFrom(message.from, message.candidate);
      case "chat":
        return this.chat.add({ from: this.peers.get(message.from)?.who.who || "", text: message.text, at: message.at });
      case "renegotiate":
        return this.restartIce(message.peer_id);
      case "position":
      case "delay":
        return this.hooks.onWaiting?.(message);
      case "guest_status":
        return this.hooks.onGuest?.(message);
      case "error":
        // A server without media_state refuses it (invalid_message): nothing breaks, the
        // others just see no state.
        if (message.code === "resume_failed") this.closeAllPeers();
        return this.hooks.onRefused?.(message);
      default:
        return undefined;
    }
  }

  joined(message) {
    this.iceServers = message.ice_servers || [];
    this.iceTtl = message.ice_ttl || 3600;
    this.iceFetchedAt = Date.now();
    this.resumeSeconds = message.resume_seconds || this.resumeSeconds;
    this.role = message.role || this.role;
    // A fresh participant id means the old peer connections are dead on the other side.
    if (!message.resumed || (this.self && this.self !== message.participant_id)) this.closeAllPeers();
    this.self = message.participant_id;
    this.hooks.onJoined?.(message);
    this.roomStateChanged(message.room_state, null);
    this.sendMediaState();
    this.renderStatus();
  }

  roomStateChanged(state, since) {
    const before = this.roomState;
    this.roomState = state;
    // The patient sent back to the waiting room (and the guest with them): the call is over
    // for now, the socket stays.
    const waits = this.role === "patient" || this.role === "guest";
    if (waits && state === "waiting" && (before === "admitted" || before === "in_call")) {
      this.closeAllPeers();
      this.timer.reset();
      this.specialistGone = false;
      this.showNotice("");
      this.layout();
    }
    return this.hooks.onRoomState?.(state, since);
  }

  peerJoined(peer, weOffer) {
    for (const [id, other] of this.peers) {
      // A participant who reloaded the page comes back with a new id: drop the stale one.
      if (id === peer.id || (SINGLE_ROLES.has(peer.role) && other.role === peer.role)) this.removePeer(id);
    }
    if (peer.role === "specialist") this.specialistGone = false;
    this.showNotice("");
    const entry = this.createPeer(peer);
    if (weOffer) return this.makeOffer(entry, false);
    return undefined;
  }

  peerState(message) {
    const entry = this.peers.get(message.peer_id);
    if (!entry) return;
    const { muted, camera_off: cameraOff, audio_only: audioOnly, screen_sharing: sharing, connection } = message;
    entry.state = { muted: !!muted, camera_off: !!cameraOff, audio_only: !!audioOnly, screen_sharing: !!sharing, connection: connection || "connected" };
    this.renderPeer(entry);
    this.stageLayout.update(); // a shared screen takes most of the stage
  }

  peerLeft(peerId, reason) {
    const entry = this.peers.get(peerId);
    if (!entry) return;
    this.removePeer(peerId);
    if (reason === "ended" || (reason === "sent_back" && this.role === "patient")) return;
    if (entry.role === "specialist") this.specialistGone = true;
    this.showNotice(departure(entry.who.who, reason), this.peers.size > 0);
    this.layout();
  }

  createPeer(peer) {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    const who = describe(peer, this.known);
    const tile = new Tile(peer, who);
    const entry = {
      id: peer.id, role: peer.role, who, pc, tile, video: tile.video, pending: [], tracksAdded: false, offerer: false,
      state: { ...NO_STATE, ...(peer.state || {}) }, remoteVideo: "waiting", iceLost: false, restarted: false, restartOut: false, frames: -1, framesAt: 0,
    };
    pc.addEventListener("icecandidate", (event) => {
      const c = event.candidate;
      const candidate = c ? { candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex, usernameFragment: c.usernameFragment } : null;
      this.signaling.send({ type: "candidate", to: peer.id, candidate });
    });
    pc.addEventListener("track", (event) => this.remoteTrack(entry, event));
    pc.addEventListener("iceconnectionstatechange", () => {
      const state = pc.iceConnectionState;
      this.recoverPath(entry);
      if (state === "connected" || state === "completed") this.timer.start();
      entry.iceLost = state === "disconnected" || state === "failed";
      this.renderPeer(entry);
      this.renderStatus();
    });
    pc.addEventListener("connectionstatechange", () => {
      this.recoverPath(entry);
      this.renderStatus();
    });
    pc.addEventListener("signalingstatechange", () => {
      if (pc.signalingState === "stable") this.answered(entry);
    });
    this.quality.watch(peer.id, pc, tile, () => !entry.state.audio_only && !entry.state.camera_off && entry.remoteVideo !== "none");
    this.peers.set(peer.id, entry);
    this.el.remote.append(tile.figure);
    this.renderPeer(entry);
    this.layout();
    return entry;
  }

  /**
   * The offering side restarts ICE once when the media path failed. Chromium may say so only
   * in connectionState: when the network a path used goes away (a link down, even for
   * seconds), its candidates and pairs go with it for good and connectionState becomes
   * "failed" while iceConnectionState stays "disconnected"; only a restart gathers again.
   * Once per failure (both events come), and not while an offer is out (its answer is checked
   * again in answered()). A restart that could not be sent (the websocket is down, the browser
   * refused) does not count: the next sign of the same failure tries again, and a websocket
   * that resumes brings the server's `renegotiate`.
   */
  recoverPath(entry) {
    const { pc } = entry;
    if (!pathFailed(pc)) {
      entry.restarted = false;
      return;
    }
    if (!entry.offerer || entry.restarted || pc.signalingState !== "stable") return;
    entry.restarted = true;
    this.restartIce(entry.id)
      .catch((error) => {
        console.warn("ICE restart failed", error);
        return false;
      })
      .then((sent) => {
        if (!sent) entry.restarted = false;
      });
  }

  /**
   * Signalling is stable again (an answer came, or an unsent offer was taken back). A failure
   * seen while the offer was out was left for now: if the answered offer restarted ICE, that
   * was this failure's restart (its checks change the state, and a failure after them is a new
   * one); any other answer leaves a failed path failed, so it is restarted now.
   */
  answered(entry) {
    const restart = entry.restartOut;
    entry.restartOut = false;
    if (restart && pathFailed(entry.pc)) {
      entry.restarted = true;
      return;
    }
    this.recoverPath(entry);
  }

  remoteTrack(entry, event) {
    const { video } = entry;
    const remote = event.streams[0] || new MediaStream([event.track]);
    if (video.srcObject !== remote) {
      video.srcObject = remote;
      playVideo(video, this.el.unmute);
    }
    if (event.track.kind === "audio") {
      this.levels.watch(entry.id, remote, (on) => entry.tile.speaking(on));
    } else {
      // A track without frames (the other side switched to audio only) must not freeze.
      const seen = () => {
        entry.remoteVideo = event.track.muted || event.track.readyState === "ended" ? "none" : "live";
        entry.framesAt = Date.now();
        this.renderPeer(entry);
      };
      event.track.addEventListener("mute", seen);
      event.track.addEventListener("unmute", seen);
      event.track.addEventListener("ended", seen);
      video.addEventListener("resize", () => this.stageLayout.update());
      if (!event.track.muted) {
        entry.remoteVideo = "live";
        entry.framesAt = Date.now();
      }
    }
    this.renderPeer(entry);
    this.renderStatus();
  }

  /**
   * A picture that stops (the other side went to audio only on a server that does not say
   * so, or its video stalls) must not stay frozen on the tile: without new frames for a few
   * seconds the tile shows the name instead, until frames come again.
   */
  checkFrames() {
    const now = Date.now();
    for (const entry of this.peers.values()) {
      const quality = entry.video.getVideoPlaybackQuality?.();
      if (!quality || entry.remoteVideo === "waiting" || entry.remoteVideo === "none") continue;
      let seen = entry.remoteVideo;
      if (quality.totalVideoFrames !== entry.frames) {
        entry.frames = quality.totalVideoFrames;
        entry.framesAt = now;
        seen = "live";
      } else if (now - entry.framesAt > 3000 && !entry.state.screen_sharing) {
        seen = "stalled";
      }
      if (seen !== entry.remoteVideo) {
        entry.remoteVideo = seen;
        this.renderPeer(entry);
      }
    }
  }

  renderPeer(entry) {
    const lost = entry.state.connection === "reconnecting" || entry.iceLost;
    entry.tile.update(entry.state, { video: entry.remoteVideo, lost });
  }

  addLocalTracks(entry) {
    if (entry.tracksAdded) return;
    entry.tracksAdded = true;
    for (const track of this.stream.getTracks()) entry.pc.addTrack(track, this.stream);
    // Without a camera we still want to see the others.
    if (this.stream.getVideoTracks().length === 0 && entry.offerer) {
      entry.pc.addTransceiver("video", { direction: "recvonly" });
    }
    this.share.attach(entry.pc); // sharing: the screen goes out instead of the camera
  }

  /**
   * Sends an offer; false when the websocket is down. An offer nobody gets is taken back, so
   * signalling does not wait for an answer that cannot come: the resume's `renegotiate` (or
   * the next failure, recoverPath) makes a new one.
   */
  async makeOffer(entry, iceRestart) {
    entry.offerer = true;
    this.addLocalTracks(entry);
    const { pc } = entry;
    const offer = await pc.createOffer(iceRestart ? { iceRestart: true } : undefined);
    await pc.setLocalDescription(offer);
    const sent = this.signaling.send({ type: "offer", to: entry.id, sdp: pc.localDescription.sdp });
    entry.restartOut = sent && !!iceRestart;
    if (!sent && pc.signalingState === "have-local-offer") await pc.setLocalDescription({ type: "rollback" });
    return sent;
  }

  async offerFrom(from, sdp) {
    let entry = this.peers.get(from);
    if (!entry) entry = this.createPeer({ id: from, role: "patient", name: "" });
    await entry.pc.setRemoteDescription({ type: "offer", sdp });
    this.addLocalTracks(entry);
    await this.flushCandidates(entry);
    const answer = await entry.pc.createAnswer();
    await entry.pc.setLocalDescription(answer);
    this.signaling.send({ type: "answer", to: from, sdp: entry.pc.localDescription.sdp });
  }

  async candidateFrom(from, candidate) {
    const entry = this.peers.get(from);
    if (!entry) return;
    if (!entry.pc.remoteDescription) {
      entry.pending.push(candidate);
      return;
    }
    await this.addCandidate(entry, candidate);
  }

  async addCandidate(entry, candidate) {
    try {
      await entry.pc.addIceCandidate(candidate || undefined);
    } catch (error) {
      // Candidates of an earlier ICE generation after a restart are expected to fail.
      console.debug("candidate ignored", error.name);
    }
  }

  async flushCandidates(entry) {
    if (!entry) return;
    const pending = entry.pending.splice(0);
    for (const candidate of pending) await this.addCandidate(entry, candidate);
  }

  /** An ICE-restart offer to that peer; whether it went out (rejects if the browser refuses). */
  async restartIce(peerId) {
    const entry = this.peers.get(peerId);
    if (!entry || !entry.offerer) return false;
    await this.refreshIceServers();
    entry.pc.setConfiguration({ iceServers: this.iceServers });
    return this.makeOffer(entry, true);
  }

  async refreshIceServers() {
    // TURN credentials expire: fetch fresh ones before restarting ICE late in a long call.
    if (Date.now() - this.iceFetchedAt < (this.iceTtl * 1000) / 2) return;
    try {
      const body = await api(`/api/v1/rooms/${this.appointmentId}/ice`);
      this.iceServers = body.iceServers;
      this.iceTtl = body.ttl;
      this.iceFetchedAt = Date.now();
    } catch {
      // Keep the old ones; the restart may still work with host or STUN candidates.
    }
  }

  removePeer(peerId) {
    const entry = this.peers.get(peerId);
    if (!entry) return;
    this.peers.delete(peerId);
    this.levels.unwatch(peerId);
    this.quality.unwatch(peerId);
    entry.pc.close();
    entry.video.srcObject = null;
    entry.tile.figure.remove();
    this.layout();
    this.renderStatus();
  }

  closeAllPeers() {
    for (const id of [...this.peers.keys()]) this.removePeer(id);
  }

  // ---------------------------------------------------------------- view
  layout() {
    const count = this.peers.size;
    this.el.placeholder.hidden = count > 0;
    this.stageLayout.update();
    this.adviseWhenAlone();
    this.hooks.onPeers?.([...this.peers.values()].map((p) => ({ id: p.id, role: p.role })));
  }

  /**
   * A patient left alone after the specialist went (left or lost) is told, once the resume
   * window has passed without anyone coming back, what to do, instead of waiting forever.
   */
  adviseWhenAlone() {
    const alone = this.role === "patient" && this.specialistGone && this.peers.size === 0 && !this.ended
      && this.roomState !== "waiting";
    if (!alone) {
      clearTimeout(this.adviceTimer);
      this.adviceTimer = null;
      this.el.advice.hidden = true;
      return;
    }
    if (this.adviceTimer || !this.el.advice.hidden) return;
    this.adviceTimer = setTimeout(() => {
      this.adviceTimer = null;
      this.el.advice.textContent = t("Please stay on this page: the doctor can bring you back into the call. If nobody comes back within a few minutes, please phone your GP practice.");
      this.el.advice.hidden = false;
    }, this.resumeSeconds * 1000);
  }

  /** A notice on the stage (who left, who was lost); `brief`: it goes after a while. */
  showNotice(text, brief = false) {
    clearTimeout(this.noticeTimer);
    this.el.notice.textContent = text;
    this.el.notice.hidden = !text || this.peers.size === 0;
    this.el.placeholderText.textContent = text || t("Waiting for the other participants…");
    if (text && brief) this.noticeTimer = setTimeout(() => (this.el.notice.hidden = true), 15_000);
  }

  showLocal() {
    const { local, self } = this.el;
    local.srcObject = this.stream;
    local.muted = true;
    const video = !this.media.audio_only;
    local.hidden = !video;
    if (video) playVideo(local);
    self.dataset.cameraOff = String(this.media.camera_off || this.media.audio_only);
    $(".self-off", self).textContent = this.media.audio_only ? t("Audio only") : t("Camera off");
    this.el.camera.disabled = this.media.audio_only;
    this.setPressed(this.el.audioOnly, this.media.audio_only);
  }

  setWsStatus(status) {
    this.wsStatus = status;
    this.renderStatus();
    this.hooks.onConnection?.(status);
  }

  renderStatus() {
    if (this.ended) return;
    const states = [...this.peers.values()].map((p) => p.pc.iceConnectionState);
    const lost = this.wsStatus === "reconnecting" || !navigator.onLine
      || states.some((s) => s === "disconnected" || s === "failed");
    let text;
    if (lost) text = t("Connection lost, restoring…");
    else if (this.wsStatus === "connecting") text = t("Connecting…");
    else if (states.some((s) => s === "connected" || s === "completed")) text = t("Connected");
    else if (states.length > 0) text = t("Connecting…");
    else text = t("Waiting for the other participants…");
    this.el.status.textContent = text;
    this.el.status.classList.toggle("lost", lost);
    this.root.dataset.connection = lost ? "lost" : states.length ? "peers" : "alone";
  }

  setPressed(button, pressed) {
    button.setAttribute("aria-pressed", String(pressed));
  }

  /** Tells the others (through the server) what they should show on this person's tile. */
  sendMediaState() {
    this.signaling.send({ type: "media_state", ...this.media });
  }

  bindControls() {
    const { mute, camera, audioOnly, hangup, chatForm } = this.el;
    mute.addEventListener("click", () => {
      const muted = !this.media.muted;
      for (const track of this.stream.getAudioTracks()) track.enabled = !muted;
      this.media.muted = muted;
      this.setPressed(mute, muted);
      this.el.selfMuted.hidden = !muted;
      this.el.self.dataset.muted = String(muted);
      this.sendMediaState();
    });
    camera.addEventListener("click", () => {
      const off = !this.media.camera_off;
      for (const track of this.stream.getVideoTracks()) track.enabled = !off;
      this.media.camera_off = off;
      this.setPressed(camera, off);
      this.showLocal();
      this.sendMediaState();
    });
    audioOnly.addEventListener("click", () => this.toggleAudioOnly());
    hangup.addEventListener("click", () => (this.hooks.onHangup ? this.hooks.onHangup() : this.hangup()));
    chatForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const input = chatForm.querySelector("input");
      const text = input.value.trim();
      if (!text) return;
      if (this.signaling.send({ type: "chat", text })) {
        this.chat.add({ text, mine: true });
        input.value = "";
      } else {
        this.chat.notice(t("Not sent: {text}", { text }));
      }
    });
  }

  /** Audio only saves bandwidth on weak networks: the camera is released, not just hidden. */
  async toggleAudioOnly() {
    const enable = !this.media.audio_only;
    if (enable) {
      for (const track of this.stream.getVideoTracks()) {
        track.stop();
        this.stream.removeTrack(track);
      }
      await this.replaceVideo(null);
    } else {
      try {
        const camera = await getMedia({ video: true, videoId: this.videoId || "" });
        const track = camera.getVideoTracks()[0];
        camera.getAudioTracks().forEach((a) => a.stop());
        track.enabled = !this.media.camera_off;
        this.stream.addTrack(track);
        await this.replaceVideo(track);
      } catch {
        this.chat.notice(t("The camera could not be started. You stay on audio only."));
        return;
      }
    }
    this.media.audio_only = enable;
    this.showLocal();
    this.sendMediaState();
  }

  async replaceVideo(track) {
    const outgoing = this.share.sending || track; // a shared screen stays on the senders
    for (const entry of this.peers.values()) {
      for (const transceiver of entry.pc.getTransceivers()) {
        if (transceiver.receiver.track.kind === "video" && transceiver.sender) {
          await transceiver.sender.replaceTrack(outgoing);
        }
      }
    }
  }

  /** Leave the call (the others stay); the page decides what comes next. */
  hangup() {
    this.signaling.leave();
    this.finish("left");
  }

  finish(reason) {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.adviceTimer);
    clearInterval(this.frameTimer);
    this.signaling.close();
    this.closeAllPeers();
    this.levels.close();
    this.quality.close();
    this.fullscreen.exit();
    this.share.close();
    // The call is over for this tab: its chat and timer go (a reload starts afresh).
    this.chat.clear();
    this.timer.reset();
    for (const track of this.stream.getTracks()) track.stop();
    this.el.status.textContent = FATAL_MESSAGES[reason]?.() || "";
    this.root.dataset.connection = "ended";
    this.hooks.onConnection?.("ended");
    this.hooks.onEnd?.(reason);
  }
}
