// Specialist: one consultation: the case, the documents, and the report the GP reads.
import { api, errorMessage } from "./api.js";
import { $, h, showAlert } from "./dom.js";
import { t, formatDate, formatDateTime } from "./i18n.js";
import { particularsRows, statusLine } from "./labels.js";
import { listDocuments, mountReport } from "./records.js";
import { mountConversation } from "./conversation.js";
import { busy } from "./dom.js";
import { cancelledRow } from "./labels.js";

const root = $("#specialist-appointment");
// Room states in which the consultation has begun: from the server (app/rooms/state.py BEGUN).
const BEGUN = new Set(root.dataset.begunStates.split(" "));
const id = Number(root.dataset.appointment);
const errorBox = $("[data-error]", root);

async function load() {
  let a;
  try {
    a = await api(`/api/v1/appointments/${id}`);
  } catch (error) {
    showAlert(errorBox, errorMessage(error));
    return;
  }
  $("[data-content]", root).hidden = false;
  // A written Telekonsil (no video): read the findings, ask back if need be, answer with the
  // report; no call, no calendar, no identity check (nobody is seen).
  const written = a.kind === "written";
  if (written) {
    const title = t("Written Telekonsil · {specialty}", { specialty: a.specialty });
    $("[data-title]", root).textContent = title;
    document.title = `${title} · Konsil`;
  }
  const rows = [
    [written ? t("Sent") : t("Time"), formatDateTime(a.starts_at)],
    [t("Status"), statusLine(a)],
    [t("Patient"), a.patient_name],
    [t("Date of birth"), formatDate(`${a.patient_birth_date}T12:00:00Z`)],
    [t("Booked by"), a.gp_name],
    [t("Urgency"), a.urgency === "urgent" ? t("Urgent") : t("Routine")],
    [t("Clinical question"), a.clinical_question],
    ...particularsRows(a),
    ...cancelledRow(a),
  ];
  $("[data-details]", root).replaceChildren(...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", { class: "report" }, v)]));
  $("[data-join]", root).hidden = written || a.status !== "booked";
  $("[data-ics]", root).hidden = written;
  // Declining is cancelling with a reason: while nothing has begun.
  $("[data-decline]", root).hidden = a.status !== "booked" || BEGUN.has(a.room_state) || Boolean(a.admitted_at);
  // Same rule as the API: from the start, or earlier once the patient was admitted (also
  // when sent back to the waiting room since: admitted_at stays).
  const begun = BEGUN.has(a.room_state) || Boolean(a.admitted_at) || new Date(a.starts_at).getTime() <= Date.now();
  if (!begun && a.status !== "cancelled") {
    $("[data-report-saved]", root).textContent = t("The report can be saved once you have admitted the patient, or from {time}.", { time: formatDateTime(a.starts_at) });
  }
  if (written) $("[data-identity]", root).hidden = true;
  else showIdentity(a);
  await mountReport($("[data-report-form]", root), {
    appointmentId: id, saved: $("[data-report-saved]", root), errorBox, existing: a.has_report,
  });
  await listDocuments($("[data-documents]", root), id);
  await mountConversation($("[data-conversation]", root), id, { role: "specialist", open: a.status !== "cancelled" });
}

$("[data-decline-form]", root).addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const reason = form.reason.value.trim();
  if (!reason) {
    showAlert(errorBox, t("Please say why, for the practice."));
    form.reason.focus();
    return;
  }
  await busy(form.querySelector("button[type=submit]"), async () => {
    try {
      await api(`/api/v1/appointments/${id}/cancel`, { method: "POST", body: { reason } });
      showAlert($("[data-notice]", root), t("The request is declined; the practice reads your reason."), "success");
      showAlert(errorBox, "");
      await load();
    } catch (error) {
      showAlert(errorBox, errorMessage(error));
    }
  });
});

// The identity check (EBM 01444): confirmed once the patient was let in; kept from then on.
function showIdentity(a) {
  const box = $("[data-identity]", root);
  const status = $("[data-identity-status]", box);
  const button = $("[data-identity-confirm]", box);
  box.hidden = a.status === "cancelled";
  const show = (checkedAt) => {
    button.hidden = Boolean(checkedAt) || !a.admitted_at;
    if (checkedAt) status.textContent = t("Identity check confirmed on {time}.", { time: formatDateTime(checkedAt) });
    else if (!a.admitted_at) status.textContent = t("You can confirm it once you have let the patient in.");
    else status.textContent = "";
  };
  show(a.identity_checked_at);
  button.onclick = () => busy(button, async () => {
    try {
      const checked = await api(`/api/v1/appointments/${id}/identity-checked`, { method: "POST" });
      show(checked.identity_checked_at);
    } catch (error) {
      showAlert(errorBox, errorMessage(error));
    }
  });
}

load().catch((error) => showAlert(errorBox, errorMessage(error)));
