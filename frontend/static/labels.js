// Human words for the API's states.
import { t, formatDate, formatDateTime } from "./i18n.js";

export const STATUS = {
  booked: () => t("Booked"),
  completed: () => t("Completed"),
  no_show: () => t("Patient did not come"),
  cancelled: () => t("Cancelled"),
};

export const ROOM = {
  scheduled: () => t("Scheduled"),
  waiting: () => t("Patient waiting"),
  admitted: () => t("Admitted"),
  in_call: () => t("In the call"),
  ended: () => t("Ended"),
  no_show: () => t("Patient did not come"),
  cancelled: () => t("Cancelled"),
};

export const label = (table, key) => (table[key] ? table[key]() : key);

/** An appointment's status and room state in one line, e.g. "Booked · Patient waiting"; a
 * closed room that says what the status says ("Cancelled", "Patient did not come") once. */
export function statusLine(appointment) {
  // An on-call request or a written Telekonsil that no specialist has taken yet is not a
  // booking yet; a written one has no room to be in.
  const requested = ["on_call", "written"].includes(appointment.kind) && !appointment.specialist_id && appointment.status === "booked";
  const status = requested ? t("Requested") : label(STATUS, appointment.status);
  if (appointment.kind === "written") return status;
  const room = label(ROOM, appointment.room_state);
  return room === status ? status : `${status} · ${room}`;
}

/** Who cancelled and why, as a row of the details (none while not cancelled). */
export function cancelledRow(a) {
  if (a.status !== "cancelled") return [];
  // Cancellations from before Konsil kept who cancelled say only that.
  const who = { specialist: () => t("Declined by the specialist"), gp: () => t("Cancelled by the practice") }[a.cancelled_by];
  if (!who) return [[t("Cancellation"), a.cancel_reason || t("Cancelled")]];
  return [[t("Cancellation"), a.cancel_reason ? `${who()}: ${a.cancel_reason}` : who()]];
}

const SEX = {
  female: () => t("Female"),
  male: () => t("Male"),
  diverse: () => t("Diverse"),
  unknown: () => t("Unknown"),
};

const CERTAINTY = {
  G: () => t("Confirmed"),
  V: () => t("Suspected"),
  Z: () => t("State after"),
  A: () => t("Excluded"),
};

/** The Telekonsil request's particulars the GP gave, as rows of the appointment's details
 * (none for those left out). */
export function particularsRows(a) {
  const diagnosis = [a.diagnosis_code, a.diagnosis_text].filter(Boolean).join(" ");
  const certainty = a.diagnosis_certainty ? label(CERTAINTY, a.diagnosis_certainty) : "";
  const rows = [
    [t("Insurance number"), a.patient_insurance_number],
    [t("Sex"), a.patient_sex && label(SEX, a.patient_sex)],
    [t("Diagnosis"), diagnosis && (certainty ? `${certainty}: ${diagnosis}` : diagnosis)],
    [t("Medication"), a.medication],
    [t("Answer needed by"), a.answer_by && formatDate(`${a.answer_by}T12:00:00Z`)],
    [t("Consent to the Telekonsil"), a.consent_recorded_at && t("recorded {time}", { time: formatDateTime(a.consent_recorded_at) })],
  ];
  return rows.filter(([, value]) => value);
}
