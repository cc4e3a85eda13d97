// Pre-call connection check: a short WebRTC call to Konsil's echo peer, over in ≤ 3 s.
//
// The server sends back the audio and video it receives and every data-channel message, so
// one connection measures both directions. The echo peer exists only for this check;
// consultation media never passes through the server.
//
// Everything runs at once, not one step after the other: the peer connection (transceivers,
// data channel, ICE gathering) is made while the patient still looks at the camera preview;
// from the click the offer goes out, probes (see Probes) start the moment the data channel
// opens and the media counters are read from the first echoed packet on. The check stops as soon as the
// verdict is clear (good round trip and enough bitrate after EARLY_VERDICT_MS) and never later
// than CHECK_CAP_MS after the start, with a verdict from what was measured by then.
//
// Usage (the patient page):
//   import { prepareConnectionCheck } from "/static/precheck.js";
//   const check = prepareConnectionCheck({ iceServers });      // while the preview shows
//   const result = await check.run({ csrfToken, stream });      // on "continue"
//   // result: { verdict: "good" | "weak" | "none", recommendation: "video" | "audio",
//   //           rttMs, packetLossPct, bitrateKbps, connectMs, durationMs (≤ CHECK_CAP_MS),
//   //           endedBy: "clear" | "cap" | "failed" }
//
// run() throws ConnectionCheckError with .code "busy" (server at its limit: try again shortly),
// "not_authenticated" or "http_<status>": then there is no verdict, only "not checked".

const ENDPOINT = "/api/v1/precheck/offer";

// Thresholds for recommending video: beyond these a video call stutters or freezes on the
// phones and rural lines Konsil is used on, and audio-only is the better consultation.
export const VIDEO_MAX_RTT_MS = 400;
export const VIDEO_MAX_LOSS_PCT = 5;
export const VIDEO_MIN_KBPS = 250;

// From the start (the click) to the verdict, whatever the network does.
export const CHECK_CAP_MS = 3000;
// The earliest moment a clear result ends the check.
export const EARLY_VERDICT_MS = 1500;
// A clear result needs this many echoed probes and this much echoed media behind it.
const MIN_ECHOES = 20;
// The round trip is the median of the latest this many echoes (one second of probes).
const RECENT_ECHOES = 25;
const MIN_MEDIA_MS = 1000;
const PROBE_EVERY_MS = 40;
const PROBE_BYTES = 1000;
const PROBE_MAX_QUEUED = 16 * PROBE_BYTES;
const STATS_EVERY_MS = 250;
// Room left before the cap for the last reading, the summary and the page's update.
const FINAL_MARGIN_MS = 200;
// A probe not echoed within this time counts as lost (a later echo still gives a round trip).
const PROBE_LOST_AFTER_MS = 1000;

export class ConnectionCheckError extends Error {
  constructor(code, message) {
    super(message || code);
    this.name = "ConnectionCheckError";
    this.code = code;
  }
}

/**
 * Makes the peer connection and starts gathering ICE candidates, before the check runs.
 * @param {object} [options]
 * @param {RTCIceServer[]} [options.iceServers]  the room's STUN/TURN servers (the call's path)
 */
export function prepareConnectionCheck({ iceServers = [] } = {}) {
  return new ConnectionCheck(iceServers);
}

/** Prepare and run in one go (the preparation then counts into the check's time). */
export async function runConnectionCheck({ iceServers = [], ...options } = {}) {
  const check = prepareConnectionCheck({ iceServers });
  try {
    return await check.run(options);
  } finally {
    check.close();
  }
}

class ConnectionCheck {
  constructor(iceServers) {
    this.pc = new RTCPeerConnection({ iceServers });
    this.probes = new Probes(this.pc.createDataChannel("rtt", { ordered: false, maxRetransmits: 0 }));
    // Transceivers without tracks yet: the camera may still change; replaceTrack() needs no
    // new negotiation.
    this.audio = this.pc.addTransceiver("audio", { direction: "sendrecv" });
    this.video = this.pc.addTransceiver("video", { direction: "sendrecv" });
    this.synthetic = null;
    this.offer = this.pc.createOffer().then((offer) => this.pc.setLocalDescription(offer));
    this.offer.catch(() => {}); // reported by run()
    this.closed = false;
  }

  /**
   * Runs the check; resolves with a verdict at the latest `capMs` after the call.
   * @param {object} options
   * @param {string} options.csrfToken  the session's CSRF token (from /api/v1/patient/me)
   * @param {MediaStream} options.stream  camera/microphone to test (the call's stream)
   * @param {(progress: object) => void} [options.onProgress]  about every 250 ms
   * @param {number} [options.capMs]
   */
  async run({ csrfToken, stream, onProgress = () => {}, capMs = CHECK_CAP_MS }) {
    const started = performance.now();
    const deadline = started + capMs;
    await this.attach(stream);
    onProgress({ phase: "connecting", elapsedMs: 0, capMs });
    const link = await this.connect(csrfToken, deadline);
    const connectMs = Math.round(performance.now() - started);
    const { samples, endedBy } =
      link === "connected" ? await this.measure(started, deadline, onProgress) : { samples: [], endedBy: "failed" };
    const measured = summarize(samples, this.probes.tally(performance.now()), link === "connected");
    const result = { ...measured, connectMs, durationMs: Math.round(performance.now() - started), endedBy };
    // Closing takes a moment in some browsers; the verdict need not wait for it.
    setTimeout(() => this.close(), 0);
    onProgress({ phase: "done", ...result });
    return result;
  }

  async attach(stream) {
    const audioTrack = stream ? stream.getAudioTracks()[0] : null;
    let videoTrack = stream ? stream.getVideoTracks()[0] : null;
    // Without a camera (or with audio only chosen) a drawn picture still measures whether
    // the line carries video.
    if (!videoTrack) {
      this.synthetic = syntheticVideo();
      videoTrack = this.synthetic.track;
    }
    await Promise.all([
      this.audio.sender.replaceTrack(audioTrack || null),
      this.video.sender.replaceTrack(videoTrack),
    ]);
  }

  /** "connected", or "failed" when no media path came up before the deadline. */
  async connect(csrfToken, deadline) {
    try {
      await this.offer;
      await gathered(this.pc, deadline - performance.now() - 1500);
      await negotiate(this.pc, csrfToken, deadline);
      return await connected(this.pc, deadline - performance.now() - FINAL_MARGIN_MS);
    } catch (error) {
      if (error instanceof ConnectionCheckError && error.code !== "connection_failed") throw error;
      return "failed"; // offline, refused by the network, or no path within the time
    }
  }

  /** Stats readings until the result is clear, the connection fails or the cap is near. */
  async measure(started, deadline, onProgress) {
    this.probes.start();
    const samples = [];
    for (;;) {
      const sample = await snapshot(this.pc, this.probes, deadline - performance.now());
      if (sample) samples.push(sample);
      const now = performance.now();
      const tally = this.probes.tally(now);
      const capMs = deadline - started;
      onProgress({ phase: "measuring", elapsedMs: Math.round(now - started), capMs, ...summarize(samples, tally) });
      if (this.pc.connectionState === "failed" || this.pc.connectionState === "closed") return { samples, endedBy: "failed" };
      if (now - started >= EARLY_VERDICT_MS && isClear(samples, tally)) return { samples, endedBy: "clear" };
      const wait = Math.min(STATS_EVERY_MS, deadline - FINAL_MARGIN_MS - now);
      if (wait <= 0) return { samples, endedBy: "cap" };
      await sleep(wait);
    }
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this.probes.stop();
    this.pc.close();
    if (this.synthetic) this.synthetic.stop();
  }
}

// Data-channel probes: a 1,000-byte message every 40 ms (200 kbit/s each way), echoed by the
// server. Each one is a ping (its round trip), a loss sample (unordered and never
// retransmitted, so a lost probe stays lost and a late one does not hold back the next) and
// bytes through the line. The bytes matter: a video encoder starts well below its target in
// the first seconds (180-250 kbit/s measured on loopback against a 300 kbit/s start), so in
// a 3 s check the media alone would measure the encoder, not the line. Probes start the
// moment the channel opens, whatever else is still going on.
class Probes {
  constructor(channel) {
    this.channel = channel;
    channel.binaryType = "arraybuffer";
    this.sent = new Map();
    this.rtts = [];
    this.echoedBytes = 0;
    this.seq = 0;
    this.timer = null;
    this.wanted = false;
    channel.onopen = () => this.wanted && this.begin();
    channel.onmessage = (event) => this.answered(event.data);
  }

  start() {
    this.wanted = true;
    if (this.channel.readyState === "open") this.begin();
  }

  begin() {
    if (this.timer !== null) return;
    const send = () => {
      // A line that cannot take the probes must not queue them without end in the browser.
      if (this.channel.readyState !== "open" || this.channel.bufferedAmount > PROBE_MAX_QUEUED) return;
      this.seq += 1;
      const message = new ArrayBuffer(PROBE_BYTES);
      new DataView(message).setUint32(0, this.seq);
      this.sent.set(this.seq, performance.now());
      this.channel.send(message);
    };
    send();
    this.timer = setInterval(send, PROBE_EVERY_MS);
  }

  answered(data) {
    if (!(data instanceof ArrayBuffer) || data.byteLength < 4) return;
    const seq = new DataView(data).getUint32(0);
    const at = this.sent.get(seq);
    if (at === undefined) return;
    this.rtts.push(performance.now() - at);
    this.echoedBytes += data.byteLength;
    this.sent.delete(seq);
  }

  /**
   * What the probes say at `now`: the latest round trips (the line as it is now, after the
   * burst of the first key frames and the sender's bandwidth probing), and how many of all
   * probes due are overdue (lost).
   */
  tally(now) {
    let lost = 0;
    for (const at of this.sent.values()) if (now - at > PROBE_LOST_AFTER_MS) lost += 1;
    return { rtts: this.rtts.slice(-RECENT_ECHOES), lost, due: this.rtts.length + lost };
  }

  stop() {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.wanted = false;
    this.channel.close();
  }
}

async function negotiate(pc, csrfToken, deadline) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), Math.max(deadline - performance.now() - FINAL_MARGIN_MS, 0));
  try {
    const response = await fetch(ENDPOINT, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken },
      body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type }),
      signal: abort.signal,
    });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      const code = response.status === 503 ? "busy" : body?.error?.code || `http_${response.status}`;
      throw new ConnectionCheckError(code, body?.error?.message);
    }
    await pc.setRemoteDescription(await response.json());
  } finally {
    clearTimeout(timer);
  }
}

// The server's answer has no trickle channel, so the offer must carry our candidates. Usually
// gathering finished while the preview was shown; otherwise the offer goes out with what is
// there when the time for it is up.
function gathered(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete" || timeoutMs <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

function connected(pc, timeoutMs) {
  return new Promise((resolve) => {
    const done = (outcome) => {
      clearTimeout(timer);
      pc.removeEventListener("connectionstatechange", check);
      resolve(outcome);
    };
    const check = () => {
      if (pc.connectionState === "connected") done("connected");
      else if (pc.connectionState === "failed" || pc.connectionState === "closed") done("failed");
    };
    const timer = setTimeout(() => done("failed"), Math.max(timeoutMs, 0));
    pc.addEventListener("connectionstatechange", check);
    check();
  });
}

// One getStats() reading, reduced to the counters we need; null if it takes past the cap.
async function snapshot(pc, probes, timeoutMs) {
  const report = await Promise.race([pc.getStats(), sleep(Math.max(timeoutMs, 0)).then(() => null)]);
  if (report === null) return null;
  const s = { at: performance.now(), sent: 0, received: 0, lost: 0, packets: 0, pairRtt: null };
  // Probe bytes went both ways: they count up and down.
  s.echoed = probes.echoedBytes;
  report.forEach((stat) => {
    if (stat.type === "outbound-rtp") s.sent += stat.bytesSent ?? 0;
    if (stat.type === "inbound-rtp") {
      s.received += stat.bytesReceived ?? 0;
      s.lost += Math.max(stat.packetsLost ?? 0, 0);
      s.packets += stat.packetsReceived ?? 0;
    }
    if (stat.type === "remote-inbound-rtp") {
      // What the echo peer reports about our stream: loss on the way up.
      s.lost += Math.max(stat.packetsLost ?? 0, 0);
    }
    if (stat.type === "candidate-pair" && stat.nominated && stat.state === "succeeded") {
      if (typeof stat.currentRoundTripTime === "number") s.pairRtt = stat.currentRoundTripTime;
    }
  });
  return s;
}

/**
 * The measurements from stats readings and the probes' tally. Bitrate counts from the first
 * reading with echoed media (before it the line carried nothing to measure); the slower
 * direction is what the call gets.
 */
export function summarize(samples, { rtts = [], lost: probesLost = 0, due: probesDue = 0 } = {}, connected = samples.length > 0) {
  const flowing = samples.filter((s) => s.received > 0);
  const first = flowing[0];
  const last = flowing[flowing.length - 1];
  const mediaMs = first ? last.at - first.at : 0;
  const seconds = Math.max(mediaMs / 1000, 0.001);
  const echoed = first ? last.echoed - first.echoed : 0;
  const upKbps = first ? ((last.sent - first.sent + echoed) * 8) / 1000 / seconds : 0;
  const downKbps = first ? ((last.received - first.received + echoed) * 8) / 1000 / seconds : 0;
  const rtpLost = first ? last.lost - first.lost : 0;
  const rtpPackets = first ? last.packets - first.packets + rtpLost : 0;
  const lost = rtpLost + probesLost;
  const packets = rtpPackets + probesDue;
  const pairRtt = samples.length ? samples[samples.length - 1].pairRtt : null;
  const rttMs = rtts.length ? median(rtts) : pairRtt !== null ? pairRtt * 1000 : null;
  const result = {
    connected,
    mediaMs: Math.round(mediaMs),
    rttMs: rttMs === null ? null : Math.round(rttMs),
    packetLossPct: packets > 0 ? Math.round((lost / packets) * 1000) / 10 : 0,
    bitrateKbps: mediaMs > 0 ? Math.round(Math.min(upKbps, downKbps)) : 0,
  };
  const verdict = judge(result);
  return { ...result, verdict, recommendation: verdict === "good" ? "video" : "audio" };
}

/**
 * The verdict for the patient: "good" (video works), "weak" (audio only is better) or "none"
 * (no connection to the echo peer at all).
 */
export function judge({ connected = true, rttMs, packetLossPct, bitrateKbps }) {
  if (!connected) return "none";
  const good =
    rttMs !== null &&
    rttMs <= VIDEO_MAX_RTT_MS &&
    packetLossPct <= VIDEO_MAX_LOSS_PCT &&
    bitrateKbps >= VIDEO_MIN_KBPS;
  return good ? "good" : "weak";
}

/** Kept for callers of the earlier API: "video" or "audio". */
export function recommend(measured) {
  return judge(measured) === "good" ? "video" : "audio";
}

/** Clear enough to stop early: good on every count, with enough behind each figure. */
export function isClear(samples, tally) {
  const result = summarize(samples, tally);
  return result.verdict === "good" && tally.rtts.length >= MIN_ECHOES && result.mediaMs >= MIN_MEDIA_MS;
}

// A moving picture drawn on a canvas, so that a check without camera still sends video.
function syntheticVideo() {
  const canvas = document.createElement("canvas");
  canvas.width = 640;
  canvas.height = 480;
  const context = canvas.getContext("2d");
  const stream = canvas.captureStream(24);
  let frame = 0;
  const draw = () => {
    frame += 1;
    for (let i = 0; i < 48; i += 1) {
      context.fillStyle = `hsl(${(i * 37 + frame * 11) % 360} 70% ${30 + ((i * frame) % 40)}%)`;
      context.fillRect((i % 8) * 80, Math.floor(i / 8) * 80, 80, 80);
    }
  };
  draw();
  const timer = setInterval(draw, 1000 / 24);
  const track = stream.getVideoTracks()[0];
  return {
    track,
    stop: () => {
      clearInterval(timer);
      track.stop();
    },
  };
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
