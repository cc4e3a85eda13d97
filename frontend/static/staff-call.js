// The call page for the specialist and the booking GP (three-way).
import { api, errorMessage } from "./api.js";
import { $, h, showAlert } from "./dom.js";
import { t, formatDate, formatDateTime, formatTime } from "./i18n.js";
import { getMediaWithFallback, mediaFailure, failureMessage } from "./media.js";
import { Call } from "./call.js";
import { Signaling } from "./signaling.js";
import { announceCallPage } from "./knock.js";

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
    $("[data-call-card]", root).hidden = true;
    return;
  }
  showCase(appointment);
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
  const call = new Call($("[data-call]", root), {
    appointmentId,
    as: "staff",
    stream: media.stream,
    onRoomState: (state, since) => {
      banner.hidden = state !== "waiting";
      if (state === "waiting") {
        $("[data-waiting-text]", root).textContent = since
          ? t("The patient is waiting since {time}.", { time: formatTime(since) })
          : t("The patient is waiting.");
      }
    },
    onEnd: (reason) => ended(reason),
    onHangup: isSpecialist ? () => endConsultation() : undefined,
  });
  $("[data-admit]", root).addEventListener("click", () => {
    if (!call.admit()) showAlert(errorBox, t("No connection to the server. Please check your internet connection."));
  });
  call.start();
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

async function endConsultation() {
  try {
    await api(`/api/v1/rooms/${appointmentId}/end`, { method: "POST" });
    // The server closes every connection of the room with 4410: onEnd("closed") follows.
  } catch (error) {
    showAlert(errorBox, errorMessage(error));
  }
}

function showCase(a) {
  $("[data-call-summary]", root).textContent = t("{time} · {specialist} · booked by {gp}", {
    time: formatDateTime(a.starts_at), specialist: a.specialist_name, gp: a.gp_name,
  });
  const rows = [
    [t("Patient"), a.patient_name],
    [t("Date of birth"), formatDate(`${a.patient_birth_date}T12:00:00Z`)],
    [t("Urgency"), a.urgency === "urgent" ? t("Urgent") : t("Routine")],
    [t("Clinical question"), a.clinical_question],
  ];
  $("[data-case]", root).replaceChildren(...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", { class: "report" }, v)]));
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
