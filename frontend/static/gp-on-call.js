// GP: what the pages say about an on-call request (an appointment of kind "on_call", docs/api.md
// "On-call requests"), and the patient's link handed from the booking page to the request's page.
import { t } from "./i18n.js";

/** Where an on-call request stands: "claimed" (a specialist took it), "closed" (withdrawn or
 * over), "unclaimed" (nobody took it in time; the GP was told), or "waiting". */
export function onCallState(appointment) {
  if (appointment.specialist_id !== null) return "claimed";
  if (appointment.status !== "booked" || ["ended", "no_show", "cancelled"].includes(appointment.room_state)) return "closed";
  return appointment.unclaimed_at ? "unclaimed" : "waiting";
}

/** "On-call consult · Kardiologie". */
export function onCallTitle(appointment) {
  return t("On-call consult · {specialty}", { specialty: appointment.specialty });
}

/** The specialist and the specialty, e.g. "Dr. Minh Nguyen (Kardiologie)"; while nobody has
 * taken an on-call request, "not taken yet (Kardiologie)". */
export function specialistText(appointment) {
  if (appointment.specialist_name) return `${appointment.specialist_name} (${appointment.specialty})`;
  return t("not taken yet ({specialty})", { specialty: appointment.specialty });
}

// The link's token is shown once, on the request's page: the booking page leaves it in this
// tab's session storage just for the page change, and the request's page takes it out at once.
const KEY = (id) => `konsil.issued-link.${id}`;

export function handOverLink(appointmentId, link) {
  sessionStorage.setItem(KEY(appointmentId), JSON.stringify(link));
}

/** The link the booking page handed over for this appointment (once), or null. */
export function takeLink(appointmentId) {
  const text = sessionStorage.getItem(KEY(appointmentId));
  sessionStorage.removeItem(KEY(appointmentId));
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}
