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
