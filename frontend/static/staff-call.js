// The call page for the specialist and the booking GP: the call (call.js) beside the case,
// the GP's documents and, for the specialist, the report, written without leaving the call.
import { api, errorMessage } from "./api.js";
import { $, h, showAlert } from "./dom.js";
import { t, formatDate, formatDateTime, formatTime } from "./i18n.js";
import { getMediaWithFallback, mediaFailure, failureMessage } from "./media.js";
import { Call } from "./call.js";
import { Signaling } from "./signaling.js";
import { announceCallPage } from "./knock.js";
import { listDocuments, mountReport } from "./records.js";
import { mountGuestInvite, guestName } from "./guest-invite.js";
import { ConnectionNotice } from "./connection-notice.js";

const root = $("#staff-call");
const appointmentId = Number(root.dataset.appointment);
const isSpecialist = root.dataset.role === "specialist";
const errorBox = $("[data-call-error]", root);

async function main() {
  let appointment;
  try {
    appointment = await api(`/api/v1/appointments/${appointmentId}`);
  } catch (error) {
    showAlert(errorBox, errorMessage(error));
    $(".call-layout", root).hidden = true;
    return;
  }
  showCase(appointment);
  showRecords(appointment);
  const guestBanner = mountGuest();
  const prefs = JSON.parse(localStorage.getItem("konsil.devices") || "{}");
  let media;
  try {
    media = await getMediaWithFallback({ audioId: prefs.audioId, videoId: prefs.videoId });
  } catch (error) {
    showAlert(errorBox, failureMessage(mediaFailure(error)));
    return;
  }
  if (media.audioOnly) showAlert(errorBox, failureMessage("missing"), "warning");
  const banner = $("[data-waiting-banner]", root);
  const sendBack = $("[data-send-back]", root);
  let sendBackAt = 0;
  // The notice at the top while the websocket is being restored (connection-notice.js).
  const notice = new ConnectionNotice($("[data-connection-notice]", root), {
    longAfter: () => call.resumeSeconds || 30,
    texts: () => ({ longHint: t("Please check your internet connection.") }),
  });
  const call = new Call($("[data-call]", root), {
    appointmentId,
    as: "staff",
    stream: media.stream,
    // An older server names neither the patient nor the GP's practice: the appointment does.
    known: {
      patient: { name: appointment.patient_name },
      specialist: { name: appointment.specialist_name, detail: appointment.specialty },
      gp: { name: appointment.gp_name },
    },
    onRoomState: (state, since) => {
      banner.hidden = state !== "waiting";
      if (state === "waiting") {
        $("[data-waiting-text]", root).textContent = since
          ? t("The patient is waiting since {time}.", { time: formatTime(since) })
          : t("The patient is waiting.");
      }
    },
    // "Zurück ins Wartezimmer" only while the patient is in the call.
    onPeers: (peers) => {
      if (sendBack) sendBack.hidden = !peers.some((p) => p.role === "patient");
    },
    onRefused: (message) => {
      // A server that does not know send_back yet refuses it as an unknown message.
      const unknown = message.code === "invalid_message" && !message.ref && Date.now() - sendBackAt < 5000;
      if (message.ref === "send_back" || message.ref === "admit") showAlert(errorBox, message.message);
      else if (unknown) showAlert(errorBox, t("The patient could not be sent back to the waiting room."));
    },
    onGuest: guestBanner,
    onConnection: (status) => notice.update(status),
    onEnd: (reason) => ended(reason),
    onHangup: isSpecialist ? () => confirmEnd() : undefined,
  });
  $("[data-admit]", root).addEventListener("click", () => {
    if (!call.admit()) showAlert(errorBox, t("No connection to the server. Please check your internet connection."));
  });
  sendBack?.addEventListener("click", () => {
    showAlert(errorBox, "");
    sendBackAt = Date.now();
    if (!call.sendBack()) showAlert(errorBox, t("No connection to the server. Please check your internet connection."));
  });
  // The chat goes beside the call, with the case and the documents.
  const chat = $(".chat", root);
  chat.classList.add("card");
  $(".call-side", root).append(chat);
  guardLeaving(call);
  call.start();
}

/**
 * Leaving the page during a call asks first. When the person does leave (or reloads), the
 * call says `leave`, so the others read "… hat das Gespräch verlassen" at once instead of a
 * dropped connection.
 */
function guardLeaving(call) {
  window.addEventListener("beforeunload", (event) => {
    if (!call.inCall()) return;
    event.preventDefault();
    event.returnValue = "";
  });
  window.addEventListener("pagehide", () => {
    if (!call.ended) call.signaling.leave();
  });
}

// The specialist sees how many others wait, quietly: no sound, no title, no announcement.
// The queue page in another tab hears that a call page is open and keeps its knock silent.
function quietCount() {
  const count = $("[data-waiting-count]", root);
  if (!count) return;
  announceCallPage();
  const live = new Signaling({
    as: "staff",
    onMessage: (message) => {
      if (message.type !== "queue") return;
      const others = message.waiting.filter((e) => e.appointment_id !== appointmentId).length;
      count.hidden = others === 0;
      count.dataset.count = String(others);
      count.textContent = others === 1
        ? t("1 other patient is waiting.")
        : t("{count} other patients are waiting.", { count: others });
    },
  });
  live.connect();
}

/** "Konsil beenden" asks in a dialog first: the call ends for everybody. */
function confirmEnd() {
  const dialog = $("[data-end-dialog]", root);
  dialog.returnValue = "";
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "end") endConsultation();
  }, { once: true });
  dialog.showModal();
}

async function endConsultation() {
  try {
    await api(`/api/v1/rooms/${appointmentId}/end`, { method: "POST" });
    // The server closes every connection of the room with 4410: onEnd("closed") follows.
  } catch (error) {
    showAlert(errorBox, errorMessage(error));
  }
}

function showCase(a) {
  // An on-call request nobody has taken yet: its specialty. (Not inside the t() call below:
  // the message extraction reads no t() nested in another's arguments.)
  const specialist = a.specialist_name || t("On-call consult · {specialty}", { specialty: a.specialty });
  $("[data-call-summary]", root).textContent = t("{time} · {specialist} · booked by {gp}", {
    time: formatDateTime(a.starts_at), specialist, gp: a.gp_name,
  });
  const rows = [
    [t("Patient"), a.patient_name],
    [t("Date of birth"), formatDate(`${a.patient_birth_date}T12:00:00Z`)],
    [t("Urgency"), a.urgency === "urgent" ? t("Urgent") : t("Routine")],
    [t("Clinical question"), a.clinical_question],
  ];
  $("[data-case]", root).replaceChildren(...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", { class: "report" }, v)]));
}

/**
 * The guest (interpreter, carer): the invitation box beside the call, and a banner while the
 * guest waits, with "Gast hereinlassen" for the specialist. Returns the `guest_status` hook.
 */
function mountGuest() {
  const refresh = mountGuestInvite($("[data-guest-invite]", root), appointmentId);
  const banner = $("[data-guest-banner]", root);
  const admit = $("[data-admit-guest]", root);
  admit?.addEventListener("click", async () => {
    try {
      await api(`/api/v1/rooms/${appointmentId}/guest/admit`, { method: "POST" });
    } catch (error) {
      showAlert(errorBox, errorMessage(error));
    }
  });
  return (message) => {
    banner.hidden = message.state !== "waiting";
    if (message.state === "waiting") {
      $("[data-guest-text]", root).textContent = isSpecialist
        ? t("{guest} is waiting to join the call.", { guest: guestName(message) })
        : t("{guest} is waiting; the specialist lets them in.", { guest: guestName(message) });
    }
    refresh();
  };
}

/** The GP's documents for both; the report panel for the specialist (records.js). */
function showRecords(a) {
  const list = $("[data-documents]", root);
  listDocuments(list, appointmentId).catch((error) => list.replaceChildren(h("li", { class: "alert error" }, errorMessage(error))));
  const form = $("[data-report-form]", root);
  if (!form) return;
  const reportError = $("[data-report-error]", root);
  mountReport(form, {
    appointmentId, saved: $("[data-report-saved]", root), errorBox: reportError, existing: a.has_report,
  }).catch((error) => showAlert(reportError, errorMessage(error)));
  // "Befund schreiben" stays on this page: it brings the report panel into view.
  $("[data-write-report]", root).addEventListener("click", () => {
    $("[data-report-panel]", root).scrollIntoView({ block: "start", behavior: "smooth" });
    form.body.focus({ preventScroll: true });
  });
}

function ended(reason) {
  const box = $("[data-call-ended]", root);
  const texts = {
    closed: t("The consultation has ended."),
    left: t("You have left the call."),
    replaced: t("The consultation was opened in another window or tab."),
    forbidden: t("You are not a participant of this consultation."),
    transferred: t("The consultation was handed to a colleague."),
    unauthenticated: t("Your session has ended. Please log in again."),
    not_found: t("This consultation does not exist."),
  };
  $("[data-ended-text]", root).textContent = texts[reason] || t("The connection was closed.");
  $("[data-call-card]", root).hidden = true;
  box.hidden = false;
  $("[data-ended-title]", root).focus();
}

quietCount();
main();
