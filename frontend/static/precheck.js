// Pre-call connection check: a short WebRTC call to Konsil's echo peer.
//
// The server sends back the audio and video it receives and answers every data-channel ping,
// so one connection measures both directions. The echo peer exists only for this check;
// consultation media never passes through the server.
//
// Usage (the patient page):
//   import { runConnectionCheck } from "/static/precheck.js";
//   const result = await runConnectionCheck({ csrfToken, onProgress: (p) => render(p) });
//   // result: { rttMs, packetLossPct, bitrateKbps, recommendation: "video" | "audio" }
//
// Throws ConnectionCheckError with .code "busy" (server at its limit: try again shortly),
// "not_authenticated", "connection_failed" (no media path at all) or "http_<status>".

const ENDPOINT = "/api/v1/precheck/offer";

// Thresholds for recommending video: beyond these a video call stutters or freezes on the
// phones and rural lines Konsil is used on, and audio-only is the better consultation.
export const VIDEO_MAX_RTT_MS = 400;
export const VIDEO_MAX_LOSS_PCT = 5;
export const VIDEO_MIN_KBPS = 250;

export class ConnectionCheckError extends Error {
  constructor(code, message) {
    super(message || code);
    this.name = "ConnectionCheckError";
    this.code = code;
  }
}

/**
 * Runs the check for about `durationMs` and resolves with the measurements.
 * @param {object} options
 * @param {string} options.csrfToken  the session's CSRF token (from /api/v1/patient/me)
 * @param {(progress: object) => void} [options.onProgress]  called about once a second
 * @param {MediaStream} [options.stream]  camera/microphone to test (asked for when omitted)
 * @param {RTCIceServer[]} [options.iceServers]  e.g. from /api/v1/rooms/{id}/ice
 * @param {number} [options.durationMs]
 */
export async function runConnectionCheck({
  csrfToken,
  onProgress = () => {},
  stream = null,
  iceServers = [],
  durationMs = 8000,
} = {}) {
  const ownStream = stream === null;
  const media = stream ?? (await openMedia());
  const pc = new RTCPeerConnection({ iceServers });
  const pings = startPings(pc);
  try {
    onProgress({ phase: "connecting" });
    for (const track of media.getTracks()) pc.addTrack(track, media);
    await negotiate(pc, csrfToken);
    await connected(pc, 10000);
    const samples = await measure(pc, pings, durationMs, onProgress);
    const result = summarize(samples, pings.rtts());
    onProgress({ phase: "done", ...result });
    return result;
  } finally {
    pings.stop();
    pc.close();
    if (ownStream) for (const track of media.getTracks()) track.stop();
  }
}

async function openMedia() {
  try {
    return await navigator.mediaDevices.getUserMedia({
      audio: true,
      video: { width: { ideal: 640 }, height: { ideal: 480 } },
    });
  } catch {
    // No camera (or no permission): still test the connection with the microphone alone.
    return navigator.mediaDevices.getUserMedia({ audio: true, video: false });
  }
}

// Data-channel pings: unordered and never retransmitted, so a lost ping shows as loss and a
// late one does not hold back the next.
function startPings(pc) {
  const channel = pc.createDataChannel("rtt", { ordered: false, maxRetransmits: 0 });
  const sent = new Map();
  const rtts = [];
  let seq = 0;
  let timer = null;
  channel.onopen = () => {
    timer = setInterval(() => {
      seq += 1;
      sent.set(seq, performance.now());
      channel.send(JSON.stringify({ seq }));
    }, 250);
  };
  channel.onmessage = (event) => {
    const { seq: answered } = JSON.parse(event.data);
    const at = sent.get(answered);
    if (at !== undefined) {
      rtts.push(performance.now() - at);
      sent.delete(answered);
    }
  };
  return {
    rtts: () => rtts.slice(),
    sentCount: () => seq,
    stop: () => {
      if (timer !== null) clearInterval(timer);
      channel.close();
    },
  };
}

async function negotiate(pc, csrfToken) {
  await pc.setLocalDescription(await pc.createOffer());
  await gatheringDone(pc, 3000);
  const response = await fetch(ENDPOINT, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken },
    body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type }),
  });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    const code = body?.error?.code;
    if (response.status === 503) throw new ConnectionCheckError("busy", body?.error?.message);
    throw new ConnectionCheckError(code || `http_${response.status}`, body?.error?.message);
  }
  await pc.setRemoteDescription(await response.json());
}

// The server's answer has no trickle channel, so the offer must carry our candidates.
function gatheringDone(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
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
  return new Promise((resolve, reject) => {
    const fail = () => reject(new ConnectionCheckError("connection_failed"));
    const timer = setTimeout(fail, timeoutMs);
    const check = () => {
      if (pc.connectionState === "connected") {
        clearTimeout(timer);
        resolve();
      } else if (pc.connectionState === "failed" || pc.connectionState === "closed") {
        clearTimeout(timer);
        fail();
      }
    };
    pc.addEventListener("connectionstatechange", check);
    check();
  });
}

async function measure(pc, pings, durationMs, onProgress) {
  const samples = [await snapshot(pc)];
  const started = performance.now();
  while (performance.now() - started < durationMs) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    samples.push(await snapshot(pc));
    const partial = summarize(samples, pings.rtts());
    onProgress({
      phase: "measuring",
      elapsedMs: Math.round(performance.now() - started),
      ...partial,
    });
  }
  return samples;
}

// One getStats() reading, reduced to the counters we need.
async function snapshot(pc) {
  const report = await pc.getStats();
  const s = { at: performance.now(), sent: 0, received: 0, lost: 0, packets: 0, pairRtt: null };
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

export function summarize(samples, rtts) {
  const first = samples[0];
  const last = samples[samples.length - 1];
  const seconds = Math.max((last.at - first.at) / 1000, 0.001);
  // Echoed media crosses the line twice; the slower direction limits the call.
  const upKbps = ((last.sent - first.sent) * 8) / 1000 / seconds;
  const downKbps = ((last.received - first.received) * 8) / 1000 / seconds;
  const lost = last.lost - first.lost;
  const packets = last.packets - first.packets + lost;
  const rttMs = rtts.length
    ? median(rtts)
    : last.pairRtt !== null
      ? last.pairRtt * 1000
      : null;
  const result = {
    rttMs: rttMs === null ? null : Math.round(rttMs),
    packetLossPct: packets > 0 ? Math.round((lost / packets) * 1000) / 10 : 0,
    bitrateKbps: Math.round(Math.min(upKbps, downKbps)),
  };
  return { ...result, recommendation: recommend(result) };
}

export function recommend({ rttMs, packetLossPct, bitrateKbps }) {
  const good =
    rttMs !== null &&
    rttMs <= VIDEO_MAX_RTT_MS &&
    packetLossPct <= VIDEO_MAX_LOSS_PCT &&
    bitrateKbps >= VIDEO_MIN_KBPS;
  return good ? "video" : "audio";
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
