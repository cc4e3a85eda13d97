// Free slots for one week, grouped by local day, as large buttons.
import { api, errorMessage } from "./api.js";
import { h } from "./dom.js";
import { t, formatDate, formatTime, localDay } from "./i18n.js";

const DAY_MS = 24 * 3600 * 1000;

/** Monday (YYYY-MM-DD) of the week containing `date`, plus `weeks` weeks. */
export function weekStart(weeks = 0, date = new Date()) {
  const day = new Date(`${localDay(date)}T12:00:00Z`);
  const monday = new Date(day.getTime() - ((day.getUTCDay() + 6) % 7) * DAY_MS + weeks * 7 * DAY_MS);
  return monday.toISOString().slice(0, 10);
}

export function addDays(isoDay, days) {
  return new Date(new Date(`${isoDay}T12:00:00Z`).getTime() + days * DAY_MS).toISOString().slice(0, 10);
}

/**
 * Loads and shows the free slots of `query` ({specialty} or {specialist}) for the week starting
 * at `from` into `container`; `onPick(slot)` when one is chosen. `current()` false: a newer
 * request replaced this one, so its answer is dropped.
 */
export async function showSlots(container, query, from, onPick, current = () => true) {
  container.replaceChildren(h("p", { class: "muted" }, t("Loading…")));
  const params = new URLSearchParams({ ...query, from, to: addDays(from, 6) });
  let slots;
  try {
    slots = await api(`/api/v1/slots?${params}`);
    if (!current()) return [];
  } catch (error) {
    if (!current()) return [];
    container.replaceChildren(h("p", { class: "alert error", role: "alert" }, errorMessage(error)));
    return [];
  }
  const now = Date.now();
  slots = slots.filter((s) => new Date(s.starts_at).getTime() > now);
  if (slots.length === 0) {
    container.replaceChildren(h("p", { class: "muted" }, t("No free slots in this week. Please look at the next week.")));
    return slots;
  }
  const byDay = new Map();
  for (const slot of slots) {
    const day = localDay(slot.starts_at);
    if (!byDay.has(day)) byDay.set(day, []);
    byDay.get(day).push(slot);
  }
  // Slots of a whole specialty ("any specialist") may be several doctors' at the same time:
  // each button then names its doctor.
  const named = Boolean(query.specialty);
  const days = [...byDay.entries()].map(([day, list]) =>
    h("section", { class: "day" },
      h("h3", {}, formatDate(list[0].starts_at)),
      h("ul", { class: "slots" }, list.map((slot) =>
        h("li", {}, h("button", {
          type: "button",
          class: named ? "slot named" : "slot",
          dataset: { startsAt: slot.starts_at, specialist: slot.specialist_id },
          "aria-label": `${formatDate(slot.starts_at)} ${formatTime(slot.starts_at)}, ${slot.specialist_name}`,
          onclick: () => onPick(slot),
        }, h("span", {}, formatTime(slot.starts_at)), named ? [" ", h("span", { class: "slot-doctor" }, slot.specialist_name)] : null))))));
  container.replaceChildren(...days);
  return slots;
}

export function weekTitle(from) {
  return t("Free slots {from} – {to}", { from: formatDate(`${from}T12:00:00Z`), to: formatDate(`${addDays(from, 6)}T12:00:00Z`) });
}
