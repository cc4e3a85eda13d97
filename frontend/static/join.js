// The patient's page, from the link to the call: redeem the link (token from the URL
// fragment, removed at once), consent, camera/microphone check, connection check, waiting
// room, call. A reload goes straight back to the waiting room or call (session cookie).
import { api, setCsrfToken, ApiError, errorMessage } from "./api.js";
import { $, showStep, showAlert } from "./dom.js";
import { t, formatDate, formatTime } from "./i18n.js";
import { getMedia, mediaFailure, playVideo } from "./media.js";
import { devicesStep, prefs } from "./devices-step.js";
import { Call } from "./call.js";
import { WaitingRoom } from "./waiting-room.js";
import { showVerdict } from "./check-verdict.js";

const root = $("#join");
const KEY = (name, id) => `konsil.${name}.${id}`;
let appointment = null;
let pendingToken = null;

// The token must not stay in the address bar, the history or a bookmark.
const fragment = location.hash.slice(1);
if (fragment) history.replaceState(null, "", location.pathname + location.search);

start();

async function start() {
  showStep(root, "loading", { focus: false });
  try {
    if (fragment) {
      pendingToken = fragment;
      appointment = await api("/api/v1/patient/session", { method: "POST", body: { token: fragment } });
    } else {
      appointment = await api("/api/v1/patient/me");
    }
  } catch (error) {
    return linkProblem(error);
  }
  pendingToken = null;
  setCsrfToken(appointment.csrf_token);
  if (sessionStorage.getItem(KEY("ready", appointment.appointment_id))) return resume();
  return consent();
}

// ------------------------------------------------------------------ link problems
function linkProblem(error) {
  const title = $("[data-problem-title]", root);
  const text = $("[data-problem-text]", root);
  const when = $("[data-problem-when]", root);
  const retry = $("[data-retry]", root);
  when.hidden = true;
  retry.hidden = true;
  const code = error instanceof ApiError ? error.code : "offline";
  if (code === "link_not_yet_valid") {
    title.textContent = t("Your link is not open yet");
    text.textContent = t("You can join 30 minutes before your appointment.");
    const opens = error.detail.valid_from;
    if (opens) {
      when.hidden = false;
      when.textContent = t("The link opens on {date} at {time}.", { date: formatDate(opens), time: formatTime(opens) });
      const wait = new Date(opens).getTime() - Date.now();
      if (pendingToken && wait < 3600 * 1000) setTimeout(() => retryWithToken(), Math.max(wait, 0) + 2000);
    }
    retry.hidden = !pendingToken;
  } else if (code === "link_expired") {
    title.textContent = error.detail.reason === "cancelled" ? t("This appointment was cancelled") : t("This link has expired");
    text.textContent = error.detail.reason === "cancelled"
      ? t("Please contact your GP practice for a new appointment.")
      : t("The consultation is over or the link is no longer valid. Please contact your GP practice if you need a new appointment.");
  } else if (code === "link_invalid") {
    title.textContent = t("This link is not valid");
    text.textContent = t("Please check that you opened the complete link from your invitation. It may also have been replaced by a newer link.");
  } else if (code === "not_authenticated") {
    title.textContent = t("Please open your invitation link");
    text.textContent = t("Open the link from your invitation (email or text message) to join your video consultation.");
  } else {
    title.textContent = t("Something went wrong");
    text.textContent = errorMessage(error);
    retry.hidden = !(pendingToken || code === "offline" || code.startsWith("http_5"));
  }
  retry.onclick = () => (pendingToken ? retryWithToken() : location.reload());
  showStep(root, "problem");
}

function retryWithToken() {
  if (!pendingToken) return location.reload();
  history.replaceState(null, "", `${location.pathname}${location.search}#${pendingToken}`);
  return location.reload();
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
  $("[data-appointment-summary]", root).textContent = summaryText();
  const form = $("[data-consent-form]", root);
  const alertBox = $("[data-consent-error]", root);
  form.onsubmit = (event) => {
    event.preventDefault();
    if (!form.consent.checked) {
      showAlert(alertBox, t("Please confirm that you agree, so that the consultation can start."));
      form.consent.setAttribute("aria-invalid", "true");
      form.consent.focus();
      return;
    }
    sessionStorage.setItem(KEY("consent", appointment.appointment_id), "1");
    devices();
  };
  showStep(root, "consent");
}

// ------------------------------------------------------------------ devices
function devices() {
  showStep(root, "devices");
  // The connection check's peer connection is made (and gathers its candidates) while the
  // patient looks at the preview, so that the check itself takes as little time as possible.
  if (!prepared) prepared = prepareCheck();
  return devicesStep(root, (stream, audioOnly) => {
    sessionStorage.setItem(KEY("ready", appointment.appointment_id), audioOnly ? "audio" : "video");
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
    sessionStorage.setItem(KEY("ready", appointment.appointment_id), call.media.audio_only ? "audio" : "video");
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
    sessionStorage.setItem(KEY("ready", appointment.appointment_id), "audio");
  }
  $("[data-check-result]", root).hidden = true;
  waitingPreview(stream);
  const room = new WaitingRoom($("[data-step=waiting]", root), {
    startsAt: appointment.starts_at,
    onCallSpecialty: appointment.specialist_name ? null : appointment.specialty,
  });
  room.start();
  const call = new Call($("[data-call]", root), {
    appointmentId: appointment.appointment_id,
    as: "patient",
    stream,
    // An older server does not say who the specialist is; the patient's appointment does.
    known: { specialist: { name: appointment.specialist_name, detail: appointment.specialty } },
    onRoomState: (state, since) => roomState(state, since, room, stream),
    onWaiting: (message) => (message.type === "position" ? room.position(message.ahead, message.eta_minutes) : room.delay(message)),
    onEnd: (reason) => {
      room.stop();
      ended(reason);
    },
  });
  call.start();
  if (check || checkFailed) verdict(call, stream, check, { camera });
}

async function resume() {
  const audioOnly = sessionStorage.getItem(KEY("ready", appointment.appointment_id)) === "audio";
  try {
    const stream = await getMedia({ audioId: prefs.audioId, videoId: prefs.videoId, video: !audioOnly })
      .catch((error) => (mediaFailure(error) === "missing" ? getMedia({ audioId: prefs.audioId, video: false }) : Promise.reject(error)));
    return waitingRoom(stream, null);
  } catch {
    return devices();
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

function ended(reason) {
  const text = $("[data-ended-text]", root);
  const rejoin = $("[data-rejoin]", root);
  const messages = {
    left: t("You have left the consultation. If this was a mistake, you can join again."),
    closed: t("The doctor has ended the consultation. Thank you! You can close this page now."),
    replaced: t("You opened the consultation in another window or tab. Please continue there."),
    unauthenticated: t("Your access has ended. Please open the link from your invitation again."),
    forbidden: t("This consultation room does not belong to your appointment."),
  };
  text.textContent = messages[reason] || errorMessage(new ApiError(0, "room_closed"));
  rejoin.hidden = !(reason === "left" || reason === "replaced");
  rejoin.onclick = () => location.reload();
  if (reason === "closed") sessionStorage.removeItem(KEY("ready", appointment.appointment_id));
  root.classList.remove("in-call");
  showStep(root, "ended");
}
