// The invited guest's page (interpreter, carer): redeem the guest link (token from the URL
// fragment, removed at once), consent, camera/microphone check, the waiting room until the
// specialist lets the guest in, the call (call.js as role "guest"). The guest sees the time,
// the specialist and its own name; never case data, and the patient only as "Patient".
// A reload goes straight back to the waiting room or call (guest session cookie).
import { $, showStep } from "./dom.js";
import { t, formatDate, formatTime } from "./i18n.js";
import { playVideo } from "./media.js";
import { devicesStep } from "./devices-step.js";
import { Call } from "./call.js";
import { guestKindLabel } from "./call-tiles.js";
import { LinkFlow } from "./link-flow.js";
import { ConnectionNotice } from "./connection-notice.js";

const root = $("#guest");
const link = new LinkFlow(root, {
  redeemUrl: "/api/v1/guest/session",
  meUrl: "/api/v1/guest/me",
  readyKey: (id) => `konsil.guest-ready.${id}`,
  texts: () => ({
    expired: () => t("The consultation is over or the link is no longer valid."),
    used: t("The invitation link was opened on another device. Please ask the practice that invited you for a new link."),
    notAuthenticated: t("Open the link from your invitation to join the video consultation."),
    ended: {
      unauthenticated: t("Your invitation has ended. Please ask the practice that invited you if you need a new link."),
      full: t("The video consultation already has four participants."),
    },
  }),
});
let me = null;

start();

async function start() {
  me = await link.open();
  if (!me) return;
  if (link.ready) return link.resume(waitingRoom, devices);
  return consent();
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
  link.consent("[data-invitation-summary]", summaryText(), devices);
}

// ------------------------------------------------------------------ camera and microphone
function devices() {
  showStep(root, "devices");
  return devicesStep(root, (stream, audioOnly) => {
    link.ready = audioOnly ? "audio" : "video";
    return waitingRoom(stream);
  });
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
  // The notice at the top while the websocket is being restored (connection-notice.js).
  const notice = new ConnectionNotice($("[data-connection-notice]", root), {
    longAfter: () => call.resumeSeconds || 30,
    texts: () => ({
      hint: t("You do not need to do anything. Please keep this page open."),
      longHint: [
        t("Please check your internet connection (Wi-Fi or mobile data) and keep this page open: it reconnects by itself."),
        t("If you need help, please call the practice that invited you."),
      ].join(" "),
    }),
  });
  const call = new Call($("[data-call]", root), {
    appointmentId: me.appointment_id,
    as: "guest",
    stream,
    known: { specialist: { name: me.specialist_name, detail: me.specialty } },
    onRoomState: (state) => {
      view.state = state;
      render(view);
    },
    onConnection: (status) => notice.update(status),
    onGuest: (message) => {
      view.admitted = message.state === "admitted";
      render(view);
    },
    onEnd: (reason) => link.ended(reason),
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
