// How the call adapts to the connection (KBV Anlage 31b § 5 (1) 7), as pure functions: no DOM,
// no browser API, no imports, so that node runs them (tests/frontend/test_call_quality_policy.py).
// call-quality.js reads getStats() of each peer connection every INTERVAL_MS, turns two reports
// into a sample (`sample`), and `assess` decides from the samples:
// - the sending step of that link (what the video sender may use, `STEPS`): down on trouble
//   that lasts a window (~6 s), up again after a stretch without trouble (20 s, doubled after
//   a step up that did not hold), so that it does not flap;
// - whether to propose audio only (lowest step and still poor; the person decides);
// - a level for the tile of that peer (good / fair / poor / unknown) from what arrives from it,
//   smoothed so that it does not flicker.
// docs/protocol.md ("Quality that adapts") lists the numbers for operators.

export const INTERVAL_MS = 2000;
/** Samples judged together: 3 × 2 s. */
export const WINDOW = 3;
export const UP_AFTER_S = 20;
export const UP_AFTER_MAX_S = 160;
/** Audio only, once declined, is not proposed again for this long. */
export const PROPOSAL_PAUSE_S = 300;
/** The browser's bandwidth estimate starts low and climbs: not judged in a call's first seconds. */
export const STARTUP_S = 10;

/**
 * The video sender's steps. `need`: the available outgoing bitrate (bit/s, the browser's own
 * estimate, audio included) below which this step is starved: about 60 % of its video plus
 * 40 kbit/s for the voice and the packets' overhead.
 */
export const STEPS = Object.freeze([
  Object.freeze({ maxBitrate: 800_000, scaleResolutionDownBy: 1, maxFramerate: 24, need: 520_000 }),
  Object.freeze({ maxBitrate: 400_000, scaleResolutionDownBy: 1.5, maxFramerate: 15, need: 280_000 }),
  Object.freeze({ maxBitrate: 200_000, scaleResolutionDownBy: 2, maxFramerate: 10, need: 160_000 }),
  Object.freeze({ maxBitrate: 100_000, scaleResolutionDownBy: 4, maxFramerate: 10, need: 100_000 }),
]);
export const LOWEST = STEPS.length - 1;

// Sending: trouble when, over the window, the far end reports this much loss. Not the round
// trip: a peer whose own upload is slow delays its reports to us, and less video from us would
// not help it.
const SEND_LOSS = 0.05;
// A step up only after the window's loss stayed below this.
const UP_LOSS = 0.02;
// Receiving (the tile): [fair, poor] thresholds.
const RECV_LOSS = [0.03, 0.1];
const RECV_JITTER = [0.05, 0.15];
const RECV_RTT = [0.3, 0.5];
const RECV_FPS = [12, 5];
const WORSE_AFTER = 2;
const BETTER_AFTER = 3;

/**
 * What matters in one getStats() report (an array of its stats objects), with counters as
 * they are; `sample` turns two of these into rates.
 */
export function snapshot(stats, at) {
  const byId = new Map(stats.map((s) => [s.id, s]));
  const first = (type, kind) => stats.find((s) => s.type === type && (!kind || s.kind === kind));
  const transport = first("transport");
  const pair = byId.get(transport?.selectedCandidatePairId)
    || stats.find((s) => s.type === "candidate-pair" && s.nominated && s.state === "succeeded");
  const outVideo = first("outbound-rtp", "video");
  const remote = (kind) => first("remote-inbound-rtp", kind);
  const inbound = (kind) => {
    const s = first("inbound-rtp", kind);
    return s ? { lost: s.packetsLost || 0, received: s.packetsReceived || 0, jitter: s.jitter ?? null, frames: s.framesDecoded ?? 0 } : null;
  };
  return {
    at,
    available: pair?.availableOutgoingBitrate ?? null,
    rtt: pair?.currentRoundTripTime ?? null,
    framesSent: outVideo?.framesSent ?? 0,
    lossVideo: remote("video")?.fractionLost ?? null,
    lossAudio: remote("audio")?.fractionLost ?? null,
    inVideo: inbound("video"),
    inAudio: inbound("audio"),
  };
}

/**
 * One sample from two snapshots `INTERVAL_MS` apart. `expectVideo`: the peer says it sends
 * video (not audio only, camera on), so few frames mean a bad picture.
 */
export function sample(before, now, expectVideo) {
  const seconds = Math.max(0.001, (now.at - before.at) / 1000);
  const sendingVideo = now.framesSent > (before?.framesSent ?? 0);
  const inKind = expectVideo && now.inVideo ? "inVideo" : "inAudio";
  const got = now[inKind];
  const had = before?.[inKind];
  let recv = null;
  if (got) {
    const received = got.received - (had?.received ?? 0);
    const lost = Math.max(0, got.lost - (had?.lost ?? 0));
    recv = {
      received,
      lost,
      jitter: got.jitter,
      fps: inKind === "inVideo" ? Math.max(0, got.frames - (had?.frames ?? 0)) / seconds : null,
    };
  }
  return {
    at: now.at,
    sendingVideo,
    available: now.available,
    // What the far end reports of our video (of our voice when we send no video).
    loss: (sendingVideo ? now.lossVideo : now.lossAudio ?? now.lossVideo) ?? null,
    pairRtt: now.rtt,
    recv,
  };
}

export function initialState() {
  return {
    step: 0,
    startedAt: null,
    window: [],
    goodSince: null,
    upWait: UP_AFTER_S,
    lastUpAt: null,
    send: "unknown",
    propose: false,
    recvWindow: [],
    recv: "unknown",
    recvPending: null,
    recvCount: 0,
  };
}

/** The middle of the known values: one odd sample in a window does not decide. */
export function median(values) {
  const known = values.filter((v) => typeof v === "number" && Number.isFinite(v)).sort((a, b) => a - b);
  if (known.length === 0) return null;
  const half = Math.floor(known.length / 2);
  return known.length % 2 ? known[half] : (known[half - 1] + known[half]) / 2;
}

const over = (value, limit) => value !== null && value > limit;
const under = (value, limit) => value !== null && value < limit;

/** Medians over the sending window; `trouble` when this step does not fit the link. */
function judgeSending(window, step, settled) {
  const loss = median(window.map((s) => s.loss));
  const available = settled ? median(window.map((s) => s.available)) : null;
  const trouble = over(loss, SEND_LOSS) || under(available, STEPS[step].need);
  return { loss, available, trouble };
}

/** The step to go down to: the next one, or further while even that one would starve. */
function stepDown(step, available) {
  let target = Math.min(LOWEST, step + 1);
  while (target < LOWEST && available !== null && STEPS[target].need > available) target += 1;
  return target;
}

function assessSending(state, s) {
  const at = s.at / 1000;
  const startedAt = state.startedAt ?? at;
  if (!s.sendingVideo) {
    // Audio only or no camera: nothing to step; the level from the loss of the voice.
    return { ...state, startedAt, window: [], goodSince: null, propose: false, send: lossLevel(s.loss) };
  }
  const window = [...state.window, s].slice(-WINDOW);
  const next = { ...state, startedAt, window };
  if (window.length < WINDOW) return next;
  const m = judgeSending(window, state.step, at - startedAt >= STARTUP_S);
  if (m.trouble) {
    next.goodSince = null;
    if (state.step < LOWEST) {
      next.step = stepDown(state.step, m.available);
      next.window = [];
      // Down again soon after going up: that step does not hold, wait longer next time.
      if (state.lastUpAt !== null && at - state.lastUpAt < 2 * state.upWait) {
        next.upWait = Math.min(UP_AFTER_MAX_S, state.upWait * 2);
      }
      next.send = next.step === LOWEST ? "poor" : "fair";
      return next;
    }
    next.send = "poor";
    next.propose = true;
    return next;
  }
  next.goodSince = state.goodSince ?? at;
  const quiet = at - next.goodSince;
  if (quiet >= 10) next.propose = false;
  const roomAbove = state.step > 0 && (m.available === null || m.available >= STEPS[state.step - 1].need);
  if (roomAbove && quiet >= state.upWait && !over(m.loss, UP_LOSS)) {
    next.step = state.step - 1;
    next.window = [];
    next.goodSince = null;
    next.lastUpAt = at;
  }
  next.send = next.step === 0 ? "good" : "fair";
  return next;
}

function lossLevel(loss) {
  if (loss === null) return "unknown";
  if (over(loss, RECV_LOSS[1])) return "poor";
  return over(loss, RECV_LOSS[0]) ? "fair" : "good";
}

/** The level of what arrives from the peer over the window, before smoothing. */
export function receivingLevel(window) {
  const recv = window.map((s) => s.recv).filter(Boolean);
  if (recv.length < WINDOW) return "unknown";
  // Connected but nothing arrives at all: as bad as it gets.
  if (recv.every((r) => r.received === 0)) return "poor";
  const loss = median(recv.map((r) => (r.received + r.lost > 0 ? r.lost / (r.received + r.lost) : null)));
  const jitter = median(recv.map((r) => r.jitter));
  const rtt = median(window.map((s) => s.pairRtt));
  const fps = median(recv.map((r) => r.fps));
  const poor = over(loss, RECV_LOSS[1]) || over(jitter, RECV_JITTER[1]) || over(rtt, RECV_RTT[1]) || under(fps, RECV_FPS[1]);
  if (poor) return "poor";
  const fair = over(loss, RECV_LOSS[0]) || over(jitter, RECV_JITTER[0]) || over(rtt, RECV_RTT[0]) || under(fps, RECV_FPS[0]);
  return fair ? "fair" : "good";
}

const RANK = { unknown: -1, good: 0, fair: 1, poor: 2 };

/** Shows a new level only once it held: worse after 2 samples, better after 3. */
function smooth(state, raw) {
  if (raw === state.recv || raw === "unknown") return { recvPending: null, recvCount: 0 };
  if (state.recv === "unknown") return { recv: raw, recvPending: null, recvCount: 0 };
  const count = raw === state.recvPending ? state.recvCount + 1 : 1;
  const needed = RANK[raw] > RANK[state.recv] ? WORSE_AFTER : BETTER_AFTER;
  if (count >= needed) return { recv: raw, recvPending: null, recvCount: 0 };
  return { recvPending: raw, recvCount: count };
}

/** The next state of one link after a sample (`sample()`); never changes `state`. */
export function assess(state, s) {
  const next = assessSending(state, s);
  next.recvWindow = [...state.recvWindow, s].slice(-WINDOW);
  return { ...next, ...smooth(state, receivingLevel(next.recvWindow)) };
}

/**
 * The encoding parameters of a step, for RTCRtpSender.setParameters(). `sharing`: a shared
 * screen (an ECG, a letter) keeps its full resolution, text must stay readable; only its
 * bitrate and frame rate go down (call-share.js asks the encoder to keep the resolution too).
 */
export function encodingFor(step, { sharing = false } = {}) {
  const { maxBitrate, scaleResolutionDownBy, maxFramerate } = STEPS[step];
  return { maxBitrate, scaleResolutionDownBy: sharing ? 1 : scaleResolutionDownBy, maxFramerate };
}

/** Whether to show the proposal now: wanted, not already audio only, not declined lately. */
export function proposalDue({ propose, audioOnly, declinedAt, now }) {
  return propose && !audioOnly && (declinedAt === null || now - declinedAt >= PROPOSAL_PAUSE_S * 1000);
}

/** The worst of several levels ("unknown" only when all are). */
export function worst(levels) {
  return levels.reduce((a, b) => (RANK[b] > RANK[a] ? b : a), "unknown");
}
