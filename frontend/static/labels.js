// Human words for the API's states.
import { t } from "./i18n.js";

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
  // An on-call request that no specialist has taken yet is not a booking yet.
  const requested = appointment.kind === "on_call" && !appointment.specialist_id && appointment.status === "booked";
  const status = requested ? t("Requested") : label(STATUS, appointment.status);
  const room = label(ROOM, appointment.room_state);
  return room === status ? status : `${status} · ${room}`;
}
