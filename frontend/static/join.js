// The patient's page, from the link to the call: redeem the link (token from the URL
// fragment, removed at once), consent, camera/microphone check, connection check, waiting
// room, call. A reload goes straight back to the waiting room or call (session cookie).
import { api } from "./api.js";
import { $, showStep } from "./dom.js";
import { t, formatDate, formatTime } from "./i18n.js";
import { playVideo } from "./media.js";
import { devicesStep } from "./devices-step.js";
import { Call } from "./call.js";
import { WaitingRoom } from "./waiting-room.js";
import { showVerdict } from "./check-verdict.js";
import { LinkFlow } from "./link-flow.js";
import { ConnectionNotice } from "./connection-notice.js";

const root = $("#join");
const KEY = (name, id) => `konsil.${name}.${id}`;
const link = new LinkFlow(root, {
  redeemUrl: "/api/v1/patient/session",
  meUrl: "/api/v1/patient/me",
  readyKey: (id) => KEY("ready", id),
  autoRetry: true,
  texts: () => ({
    expired: (reason) => (reason === "cancelled"
      ? t("Please contact your GP practice for a new appointment.")
      : t("The consultation is over or the link is no longer valid. Please contact your GP practice if you need a new appointment.")),
    notAuthenticated: t("Open the link from your invitation (email or text message) to join your video consultation."),
    ended: {
      unauthenticated: t("Your access has ended. Please open the link from your invitation again."),
      forbidden: t("This consultation room does not belong to your appointment."),
    },
  }),
});
let appointment = null;

start();

async function start() {
  appointment = await link.open();
  if (!appointment) return;
  if (link.ready) return link.resume((stream) => waitingRoom(stream, null), devices);
  return consent();
}

// ------------------------------------------------------------------ consent
function summaryText() {
  // An on-call request nobody has taken yet has no specialist's name: its specialty instead.
  if (!appointment.specialist_name) {
    return t("Your video consultation with a specialist in {specialty}.", { specialty: appointment.specialty });
  }
  return t("Video consultation with {name} ({specialty}) on {date} at {time}.", {
    name: appointment.specialist_name,
    specialty: appointment.specialty,
    date: formatDate(appointment.starts_at),
    time: formatTime(appointment.starts_at),
  });
}

function consent() {
  link.consent("[data-appointment-summary]", summaryText(), () => {
    sessionStorage.setItem(KEY("consent", appointment.appointment_id), "1");
    devices();
  });
}

// ------------------------------------------------------------------ devices
function devices() {
  showStep(root, "devices");
  // The connection check's peer connection is made (and gathers its candidates) while the
  // patient looks at the preview, so that the check itself takes as little time as possible.
  if (!prepared) prepared = prepareCheck();
  return devicesStep(root, (stream, audioOnly) => {
    link.ready = audioOnly ? "audio" : "video";
    return connectionCheck(stream);
  });
}

// ------------------------------------------------------------------ connection check
let prepared = null;

/** A prepared check (precheck.js), or null when the page has no check or it cannot start. */
function prepareCheck() {
  if (root.dataset.precheck !== "true") return null;
  return (async () => {
    const { prepareConnectionCheck } = await import("./precheck.js");
    // The room's STUN/TURN servers, so the check takes the path the call will take.
    const ice = await api(`/api/v1/rooms/${appointment.appointment_id}/ice`).catch(() => null);
    return prepareConnectionCheck({ iceServers: ice ? ice.iceServers : [] });
  })().catch(() => null);
}

/** Runs a check on `stream`: its result, or null if it did not finish (advice only). */
async function runCheck(stream, { onProgress = () => {}, skip = new Promise(() => {}) } = {}) {
  const pending = prepared || prepareCheck();
  prepared = null;
  const check = await pending;
  if (!check) return null;
  try {
    // A skipped check is closed while it still runs: its end (an error then) is nobody's.
    const running = check.run({ csrfToken: appointment.csrf_token, stream, onProgress });
    running.catch(() => {});
    return await Promise.race([running, skip]);
  } catch {
    return null; // busy or refused: the consultation must not depend on the check
  } finally {
    setTimeout(() => check.close(), 0); // after the verdict is on screen
  }
}

async function connectionCheck(stream) {
  if (root.dataset.precheck !== "true") return waitingRoom(stream, null);
  showStep(root, "check");
  const meter = $("[data-check-meter]", root);
  let skipped = false;
  const skip = new Promise((resolve) => {
    $("[data-check-skip]", root).onclick = () => {
      skipped = true;
      resolve(null);
    };
  });
  const result = await runCheck(stream, {
    skip,
    onProgress: (p) => {
      const done = p.phase === "done" ? 1 : (p.elapsedMs || 0) / p.capMs;
      meter.style.width = `${Math.round(Math.min(1, done) * 100)}%`;
    },
  });
  if (!skipped && result) $("[data-check-status]", root).textContent = t("Done.");
  return waitingRoom(stream, skipped ? null : result, !skipped && !result);
}

/**
 * The verdict in the waiting room. A weak line switches to audio only before the call starts
 * (the patient may switch back here or in the call); "Check again" runs a new check.
 */
function verdict(call, stream, result, { camera }) {
  const box = $("[data-check-result]", root);
  const choose = async (audioOnly) => {
    if (call.media.audio_only !== audioOnly) await call.toggleAudioOnly();
    link.ready = call.media.audio_only ? "audio" : "video";
    waitingPreview(stream);
    return call.media.audio_only === audioOnly;
  };
  const checkAgain = async () => {
    const button = $("[data-check-again]", box);
    button.disabled = true;
    $("[data-verdict-text]", box).textContent = t("Checking your connection");
    const again = await runCheck(stream);
    button.disabled = false;
    verdict(call, stream, again, { camera });
  };
  showVerdict(box, result, {
    choice: camera && result !== null && result.verdict === "weak",
    audioOnly: call.media.audio_only,
    onChoice: choose,
    onCheckAgain: checkAgain,
  });
}

function waitingPreview(stream) {
  const self = $("[data-waiting-preview]", root);
  const hasVideo = stream.getVideoTracks().length > 0;
  $("[data-waiting-stage]", root).hidden = !hasVideo;
  if (hasVideo) {
    self.srcObject = stream;
    playVideo(self);
  }
}

// ------------------------------------------------------------------ waiting room and call
function waitingRoom(stream, check, checkFailed = false) {
  showStep(root, "waiting");
  $("[data-waiting-summary]", root).textContent = summaryText();
  const camera = stream.getVideoTracks().length > 0;
  // A weak line: audio only is pre-selected for the call (the patient can change it).
  if (camera && check && check.verdict === "weak") {
    for (const track of stream.getVideoTracks()) {
      track.stop();
      stream.removeTrack(track);
    }
    link.ready = "audio";
  }
  $("[data-check-result]", root).hidden = true;
  waitingPreview(stream);
  const room = new WaitingRoom($("[data-step=waiting]", root), {
    startsAt: appointment.starts_at,
    onCallSpecialty: appointment.specialist_name ? null : appointment.specialty,
  });
  room.start();
  let call = null;
  const notice = connectionNotice(() => call);
  call = new Call($("[data-call]", root), {
    appointmentId: appointment.appointment_id,
    as: "patient",
    stream,
    // An older server does not say who the specialist is; the patient's appointment does.
    known: { specialist: { name: appointment.specialist_name, detail: appointment.specialty } },
    onRoomState: (state, since) => roomState(state, since, room, stream),
    onConnection: (status) => notice.update(status),
    onWaiting: (message) => {
      if (message.type !== "position") return room.delay(message);
      room.position(message.ahead, message.eta_minutes);
      // A place in a specialist's line: an on-call request nobody had taken is taken now.
      if (!appointment.specialist_name) whoTookIt(room);
    },
    onEnd: (reason) => {
      room.stop();
      link.ended(reason);
    },
  });
  call.start();
  if (check || checkFailed) verdict(call, stream, check, { camera });
}

/**
 * The notice at the top while the websocket is being restored (connection-notice.js). The
 * server holds the patient's seat for the resume window, so a waiting patient keeps their
 * place and need not do anything; after the window the advice says what to check and whom
 * to call.
 */
function connectionNotice(call) {
  return new ConnectionNotice($("[data-connection-notice]", root), {
    longAfter: () => call()?.resumeSeconds || 30,
    texts: () => ({
      hint: $("[data-step=waiting]", root).hidden
        ? t("You do not need to do anything. Please keep this page open.")
        : t("You do not need to do anything. Your place in the waiting room is kept."),
      longHint: [
        t("Please check your internet connection (Wi-Fi or mobile data) and keep this page open: it reconnects by itself."),
        t("If you need help, please call your GP practice."),
      ].join(" "),
    }),
  });
}

// The patient's details name the specialist once one has taken the request.
let asking = false;
async function whoTookIt(room) {
  if (asking) return;
  asking = true;
  try {
    const me = await api("/api/v1/patient/me");
    if (!me.specialist_name) return;
    appointment = { ...appointment, specialist_name: me.specialist_name };
    room.taken(me.specialist_name);
    $("[data-waiting-summary]", root).textContent = summaryText();
  } catch {
    // The box still says that a specialist will take over, which stays true.
  } finally {
    asking = false;
  }
}

const WAITING_TEXT = {
  scheduled: () => t("Connecting to the waiting room…"),
  waiting: () => t("You are in the waiting room. The doctor will let you in when it is your turn."),
};

function roomState(state, since, room, stream) {
  const status = $("[data-waiting-status]", root);
  const inCall = !$("[data-step=call]", root).hidden;
  if (state === "admitted" || state === "in_call") {
    room.stop();
    $("[data-sent-back]", root).hidden = true;
    if (!inCall) {
      showStep(root, "call");
      // The call uses the whole width of a phone held sideways, and the videos start at the top.
      root.classList.add("in-call");
      $("[data-call-main]", root).scrollIntoView({ block: "start" });
    }
    return;
  }
  if (state === "waiting" && inCall) {
    // Sent back by the specialist (call.js has closed the peer connections): the waiting
    // room again, with a word why, and the call comes back when they admit again.
    root.classList.remove("in-call");
    $("[data-sent-back]", root).hidden = false;
    showStep(root, "waiting");
    waitingPreview(stream);
    room.start();
  }
  if (WAITING_TEXT[state]) {
    status.lastChild.textContent = WAITING_TEXT[state]();
    if (since) status.title = t("Waiting since {time}", { time: formatTime(since) });
  }
}
