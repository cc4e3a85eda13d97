// The invited guest's page (interpreter, carer): redeem the guest link (token from the URL
// fragment, removed at once), consent, camera/microphone check, the waiting room until the
// specialist lets the guest in, the call (call.js as role "guest"). The guest sees the time,
// the specialist and its own name; never case data, and the patient only as "Patient".
// A reload goes straight back to the waiting room or call (guest session cookie).
import { api, setCsrfToken, ApiError, errorMessage } from "./api.js";
import { $, showStep, showAlert } from "./dom.js";
import { t, formatDate, formatTime } from "./i18n.js";
import { getMedia, mediaFailure, playVideo } from "./media.js";
import { devicesStep, prefs } from "./devices-step.js";
import { Call } from "./call.js";
import { guestKindLabel } from "./call-tiles.js";

const root = $("#guest");
const KEY = (id) => `konsil.guest-ready.${id}`;
let me = null;
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
      me = await api("/api/v1/guest/session", { method: "POST", body: { token: fragment } });
    } else {
      me = await api("/api/v1/guest/me");
    }
  } catch (error) {
    return linkProblem(error);
  }
  pendingToken = null;
  setCsrfToken(me.csrf_token);
  if (sessionStorage.getItem(KEY(me.appointment_id))) return resume();
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
    }
    retry.hidden = !pendingToken;
  } else if (code === "link_expired") {
    title.textContent = error.detail.reason === "cancelled" ? t("This appointment was cancelled") : t("This link has expired");
    text.textContent = t("The consultation is over or the link is no longer valid.");
  } else if (code === "link_used") {
    title.textContent = t("This link has already been used");
    text.textContent = t("The invitation link was opened on another device. Please ask the practice that invited you for a new link.");
  } else if (code === "link_invalid") {
    title.textContent = t("This link is not valid");
    text.textContent = t("Please check that you opened the complete link from your invitation. It may also have been replaced by a newer link.");
  } else if (code === "not_authenticated") {
    title.textContent = t("Please open your invitation link");
    text.textContent = t("Open the link from your invitation to join the video consultation.");
  } else {
    title.textContent = t("Something went wrong");
    text.textContent = errorMessage(error);
    retry.hidden = !(pendingToken || code === "offline" || code.startsWith("http_5"));
  }
  retry.onclick = () => {
    if (pendingToken) history.replaceState(null, "", `${location.pathname}${location.search}#${pendingToken}`);
    location.reload();
  };
  showStep(root, "problem");
}

// ------------------------------------------------------------------ consent
function summaryText() {
  // An on-call request nobody has taken yet has no specialist's name: its specialty instead.
  if (!me.specialist_name) {
    return t("You have been invited as {kind} to a video consultation with a specialist in {specialty}.", {
      kind: guestKindLabel(me.kind), specialty: me.specialty,
    });
  }
  return t("You have been invited as {kind} to the video consultation with {name} ({specialty}) on {date} at {time}.", {
    kind: guestKindLabel(me.kind),
    name: me.specialist_name,
    specialty: me.specialty,
    date: formatDate(me.starts_at),
    time: formatTime(me.starts_at),
  });
}

function consent() {
  $("[data-invitation-summary]", root).textContent = summaryText();
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
    devices();
  };
  showStep(root, "consent");
}

// ------------------------------------------------------------------ camera and microphone
function devices() {
  showStep(root, "devices");
  return devicesStep(root, (stream, audioOnly) => {
    sessionStorage.setItem(KEY(me.appointment_id), audioOnly ? "audio" : "video");
    return waitingRoom(stream);
  });
}

async function resume() {
  const audioOnly = sessionStorage.getItem(KEY(me.appointment_id)) === "audio";
  try {
    const stream = await getMedia({ audioId: prefs.audioId, videoId: prefs.videoId, video: !audioOnly })
      .catch((error) => (mediaFailure(error) === "missing" ? getMedia({ audioId: prefs.audioId, video: false }) : Promise.reject(error)));
    return waitingRoom(stream);
  } catch {
    return devices();
  }
}

// ------------------------------------------------------------------ waiting room and call
function waitingRoom(stream) {
  showStep(root, "waiting");
  $("[data-waiting-summary]", root).textContent = summaryText();
  const hasVideo = stream.getVideoTracks().length > 0;
  $("[data-waiting-stage]", root).hidden = !hasVideo;
  if (hasVideo) {
    const self = $("[data-waiting-preview]", root);
    self.srcObject = stream;
    playVideo(self);
  }
  const view = { state: null, admitted: false, stream };
  const call = new Call($("[data-call]", root), {
    appointmentId: me.appointment_id,
    as: "guest",
    stream,
    known: { specialist: { name: me.specialist_name, detail: me.specialty } },
    onRoomState: (state) => {
      view.state = state;
      render(view);
    },
    onGuest: (message) => {
      view.admitted = message.state === "admitted";
      render(view);
    },
    onEnd: (reason) => ended(reason),
  });
  call.start();
}

/** The call while the guest is admitted and the patient is in it; else the waiting room. */
function render(view) {
  const inCall = view.admitted && (view.state === "admitted" || view.state === "in_call");
  const showing = !$("[data-step=call]", root).hidden;
  if (inCall && !showing) {
    showStep(root, "call");
    root.classList.add("in-call");
    $("[data-call-main]", root).scrollIntoView({ block: "start" });
  } else if (!inCall && showing) {
    root.classList.remove("in-call");
    showStep(root, "waiting");
    if (view.stream.getVideoTracks().length > 0) playVideo($("[data-waiting-preview]", root));
  }
  $("[data-waiting-text]", root).textContent = view.admitted
    ? t("The doctor has let you in. The conversation starts as soon as the patient is there.")
    : t("Please wait: the doctor will let you in shortly.");
}

function ended(reason) {
  const messages = {
    left: t("You have left the consultation. If this was a mistake, you can join again."),
    closed: t("The doctor has ended the consultation. Thank you! You can close this page now."),
    replaced: t("You opened the consultation in another window or tab. Please continue there."),
    unauthenticated: t("Your invitation has ended. Please ask the practice that invited you if you need a new link."),
    full: t("The video consultation already has four participants."),
  };
  $("[data-ended-text]", root).textContent = messages[reason] || errorMessage(new ApiError(0, "room_closed"));
  const rejoin = $("[data-rejoin]", root);
  rejoin.hidden = !(reason === "left" || reason === "replaced");
  rejoin.onclick = () => location.reload();
  if (reason === "closed") sessionStorage.removeItem(KEY(me.appointment_id));
  root.classList.remove("in-call");
  showStep(root, "ended");
}
