// The call, shared by the patient, specialist and GP pages: one RTCPeerConnection per peer
// (mesh of up to three), signalling over the websocket, local and remote video, mute, camera
// off, audio only, chat, hang up, and a visible state while a dropped connection is restored.
import { Signaling } from "./signaling.js";
import { t, formatTime } from "./i18n.js";
import { h, $ } from "./dom.js";
import { getMedia, playVideo } from "./media.js";
import { api } from "./api.js";

const ROLE_LABEL = {
  patient: () => t("Patient"),
  specialist: () => t("Specialist"),
  gp: () => t("GP"),
};

export const FATAL_MESSAGES = {
  left: () => t("You have left the consultation."),
  closed: () => t("The consultation has ended."),
  unauthenticated: () => t("Your session has ended. Please open your link again or log in."),
  forbidden: () => t("You are not a participant of this consultation."),
  transferred: () => t("The consultation was handed to a colleague."),
  not_found: () => t("This consultation does not exist."),
  replaced: () => t("The consultation was opened in another window or tab."),
  protocol: () => t("A technical error occurred. Please reload the page."),
};

/**
 * A participant's call. `root` holds the call markup (frontend/templates/_call.html).
 * Events to the page: onRoomState(state, waitingSince), onJoined(msg), onEnd(reason),
 * onPeers(count), onWaiting(msg) (the patient's `position` and `delay`). `hangup()` leaves;
 * staff pages end the consultation through the API.
 */
export class Call {
  constructor(root, { appointmentId, as, stream, audioOnly = false, onRoomState, onJoined, onEnd, onPeers, onHangup, onWaiting }) {
    this.root = root;
    this.appointmentId = appointmentId;
    this.stream = stream;
    this.audioOnly = audioOnly || stream.getVideoTracks().length === 0;
    this.hooks = { onRoomState, onJoined, onEnd, onPeers, onHangup, onWaiting };
    this.peers = new Map();
    this.iceServers = [];
    this.iceFetchedAt = 0;
    this.iceTtl = 3600;
    this.self = null;
    this.ended = false;
    this.wsStatus = "connecting";
    this.el = {
      status: $("[data-call-status]", root),
      remote: $("[data-remote]", root),
      placeholder: $("[data-placeholder]", root),
      local: $("[data-local]", root),
      unmute: $("[data-unmute]", root),
      mute: $("[data-mute]", root),
      camera: $("[data-camera]", root),
      audioOnly: $("[data-audio-only]", root),
      hangup: $("[data-hangup]", root),
      chatLog: $("[data-chat-log]", root),
      chatForm: $("[data-chat-form]", root),
    };
    this.signaling = new Signaling({
      as,
      appointmentId,
      onMessage: (m) => this.handle(m).catch((e) => console.error("signalling", m.type, e)),
      onStatus: (s) => this.setWsStatus(s),
      onFatal: (reason) => this.finish(reason),
    });
    this.bindControls();
    this.showLocal();
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

  // ---------------------------------------------------------------- signalling messages
  async handle(message) {
    switch (message.type) {
      case "joined":
        return this.joined(message);
      case "room_state":
        return this.hooks.onRoomState?.(message.state, message.waiting_since);
      case "peer_joined":
        return this.peerJoined(message.peer, message.offer);
      case "peer_left":
        return this.removePeer(message.peer_id);
      case "offer":
        return this.offerFrom(message.from, message.sdp);
      case "answer":
        return this.peers.get(message.from)?.pc.setRemoteDescription({ type: "answer", sdp: message.sdp })
          .then(() => this.flushCandidates(this.peers.get(message.from)));
      case "candidate":
        return this.candidateFrom(message.from, message.candidate);
      case "chat":
        return this.chatLine(this.peerName(message.from), message.text, message.at);
      case "renegotiate":
        return this.restartIce(message.peer_id);
      case "position":
      case "delay":
        return this.hooks.onWaiting?.(message);
      case "error":
        if (message.code === "resume_failed") this.closeAllPeers();
        return undefined;
      default:
        return undefined;
    }
  }

  joined(message) {
    this.iceServers = message.ice_servers || [];
    this.iceTtl = message.ice_ttl || 3600;
    this.iceFetchedAt = Date.now();
    // A fresh participant id means the old peer connections are dead on the other side.
    if (!message.resumed || (this.self && this.self !== message.participant_id)) this.closeAllPeers();
    this.self = message.participant_id;
    this.hooks.onJoined?.(message);
    this.hooks.onRoomState?.(message.room_state, null);
    this.renderStatus();
  }

  peerJoined(peer, weOffer) {
    // A participant who reloaded the page comes back with a new id: drop the stale one.
    for (const [id, other] of this.peers) {
      if (id === peer.id || other.role === peer.role) this.removePeer(id);
    }
    const entry = this.createPeer(peer);
    if (weOffer) return this.makeOffer(entry, false);
    return undefined;
  }

  createPeer(peer) {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    const video = h("video", { autoplay: true, playsinline: true, dataset: { peerRole: peer.role } });
    const label = peer.name || ROLE_LABEL[peer.role]?.() || "";
    const figure = h("figure", { class: "remote", dataset: { peer: peer.id } }, video, h("figcaption", { class: "visually-hidden" }, label));
    const entry = { id: peer.id, role: peer.role, name: label, pc, video, figure, pending: [], tracksAdded: false, offerer: false };
    pc.addEventListener("icecandidate", (event) => {
      const c = event.candidate;
      const candidate = c ? { candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex, usernameFragment: c.usernameFragment } : null;
      this.signaling.send({ type: "candidate", to: peer.id, candidate });
    });
    pc.addEventListener("track", (event) => {
      const remote = event.streams[0] || new MediaStream([event.track]);
      if (video.srcObject !== remote) {
        video.srcObject = remote;
        playVideo(video, this.el.unmute);
      }
      this.renderStatus();
    });
    pc.addEventListener("iceconnectionstatechange", () => {
      if (pc.iceConnectionState === "failed" && entry.offerer) this.restartIce(peer.id);
      this.renderStatus();
    });
    pc.addEventListener("connectionstatechange", () => this.renderStatus());
    this.peers.set(peer.id, entry);
    this.el.remote.append(figure);
    this.layout();
    return entry;
  }

  addLocalTracks(entry) {
    if (entry.tracksAdded) return;
    entry.tracksAdded = true;
    for (const track of this.stream.getTracks()) entry.pc.addTrack(track, this.stream);
    // Without a camera we still want to see the others.
    if (this.stream.getVideoTracks().length === 0 && entry.offerer) {
      entry.pc.addTransceiver("video", { direction: "recvonly" });
    }
  }

  async makeOffer(entry, iceRestart) {
    entry.offerer = true;
    this.addLocalTracks(entry);
    const offer = await entry.pc.createOffer(iceRestart ? { iceRestart: true } : undefined);
    await entry.pc.setLocalDescription(offer);
    this.signaling.send({ type: "offer", to: entry.id, sdp: entry.pc.localDescription.sdp });
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

  async restartIce(peerId) {
    const entry = this.peers.get(peerId);
    if (!entry || !entry.offerer) return;
    await this.refreshIceServers();
    entry.pc.setConfiguration({ iceServers: this.iceServers });
    await this.makeOffer(entry, true);
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
    entry.pc.close();
    entry.video.srcObject = null;
    entry.figure.remove();
    this.layout();
    this.renderStatus();
  }

  closeAllPeers() {
    for (const id of [...this.peers.keys()]) this.removePeer(id);
  }

  peerName(id) {
    return this.peers.get(id)?.name || t("Participant");
  }

  // ---------------------------------------------------------------- view
  layout() {
    const count = this.peers.size;
    this.el.remote.classList.toggle("two", count > 1);
    this.el.placeholder.hidden = count > 0;
    this.hooks.onPeers?.(count);
  }

  showLocal() {
    const local = this.el.local;
    local.srcObject = this.stream;
    local.muted = true;
    local.hidden = this.audioOnly;
    if (!this.audioOnly) playVideo(local);
    this.el.camera.disabled = this.audioOnly;
    this.setPressed(this.el.audioOnly, this.audioOnly);
  }

  setWsStatus(status) {
    this.wsStatus = status;
    this.renderStatus();
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

  bindControls() {
    const { mute, camera, audioOnly, hangup, chatForm } = this.el;
    mute.addEventListener("click", () => {
      const muted = mute.getAttribute("aria-pressed") !== "true";
      for (const track of this.stream.getAudioTracks()) track.enabled = !muted;
      this.setPressed(mute, muted);
      mute.textContent = muted ? t("Unmute") : t("Mute");
    });
    camera.addEventListener("click", () => {
      const off = camera.getAttribute("aria-pressed") !== "true";
      for (const track of this.stream.getVideoTracks()) track.enabled = !off;
      this.setPressed(camera, off);
      camera.textContent = off ? t("Camera on") : t("Camera off");
      this.el.local.classList.toggle("off", off);
    });
    audioOnly.addEventListener("click", () => this.toggleAudioOnly());
    hangup.addEventListener("click", () => (this.hooks.onHangup ? this.hooks.onHangup() : this.hangup()));
    chatForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const input = chatForm.querySelector("input");
      const text = input.value.trim();
      if (!text) return;
      if (this.signaling.send({ type: "chat", text })) {
        this.chatLine(t("You"), text, new Date().toISOString());
        input.value = "";
      } else {
        this.chatLine(t("Not sent"), text, new Date().toISOString());
      }
    });
  }

  /** Audio only saves bandwidth on weak networks: the camera is released, not just hidden. */
  async toggleAudioOnly() {
    const button = this.el.audioOnly;
    const enable = button.getAttribute("aria-pressed") !== "true";
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
        this.stream.addTrack(track);
        await this.replaceVideo(track);
      } catch {
        this.chatLine(t("Notice"), t("The camera could not be started. You stay on audio only."), new Date().toISOString());
        return;
      }
    }
    this.audioOnly = enable;
    this.showLocal();
    button.textContent = enable ? t("Video on") : t("Audio only");
  }

  async replaceVideo(track) {
    for (const entry of this.peers.values()) {
      for (const transceiver of entry.pc.getTransceivers()) {
        if (transceiver.receiver.track.kind === "video" && transceiver.sender) {
          await transceiver.sender.replaceTrack(track);
        }
      }
    }
  }

  chatLine(from, text, at) {
    const item = h("li", {}, h("span", { class: "from" }, `${from} (${formatTime(at)}): `), h("span", { class: "text" }, text));
    this.el.chatLog.append(item);
    this.el.chatLog.scrollTop = this.el.chatLog.scrollHeight;
  }

  /** Leave the call (the others stay); the page decides what comes next. */
  hangup() {
    this.signaling.leave();
    this.finish("left");
  }

  finish(reason) {
    if (this.ended) return;
    this.ended = true;
    this.signaling.close();
    this.closeAllPeers();
    for (const track of this.stream.getTracks()) track.stop();
    this.el.status.textContent = FATAL_MESSAGES[reason]?.() || "";
    this.root.dataset.connection = "ended";
    this.hooks.onEnd?.(reason);
  }
}
