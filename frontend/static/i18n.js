// Translations for page scripts. Message ids are English; the catalog of the page's
// language (<html lang>) is loaded once from /i18n/<lang>.json before any module uses t().
const root = document.documentElement;
export const lang = root.lang || "de";
export const timeZone = root.dataset.tz || "Europe/Berlin";

const version = (root.dataset.static || "").split("/").filter(Boolean).pop() || "";
let catalog = {};
if (lang !== "en") {
  try {
    const response = await fetch(`/i18n/${lang}.json?v=${encodeURIComponent(version)}`, {
      credentials: "same-origin",
    });
    if (response.ok) catalog = await response.json();
  } catch {
    // Without the catalog the page still works, in English.
  }
}

/** The translation of `message`; `{name}` placeholders are filled from `values`. */
export function t(message, values = {}) {
  const text = catalog[message] || message;
  return text.replace(/\{(\w+)\}/g, (all, key) => (key in values ? String(values[key]) : all));
}

const locale = lang === "de" ? "de-DE" : "en-GB";

/** Date and time in the deployment's zone (Europe/Berlin), e.g. "Mo., 12.05.2026, 09:30". */
export function formatDateTime(value) {
  return new Intl.DateTimeFormat(locale, {
    timeZone, weekday: "short", day: "2-digit", month: "2-digit", year: "numeric",
    hour: "2-digit", minute: "2-digit",
  }).format(new Date(value));
}

export function formatDate(value) {
  return new Intl.DateTimeFormat(locale, {
    timeZone, weekday: "short", day: "2-digit", month: "2-digit", year: "numeric",
  }).format(new Date(value));
}

export function formatTime(value) {
  return new Intl.DateTimeFormat(locale, { timeZone, hour: "2-digit", minute: "2-digit" })
    .format(new Date(value));
}

/** A number as the page's language writes it, e.g. formatNumber(0.5, { minimumFractionDigits: 1 })
 * "0,5" in German, "0.5" in English; `options` as for Intl.NumberFormat. */
export function formatNumber(value, options = {}) {
  return new Intl.NumberFormat(locale, options).format(value);
}

/** The calendar day (YYYY-MM-DD) of `value` in the deployment's zone. */
export function localDay(value) {
  const parts = new Intl.DateTimeFormat("en-CA", {
    timeZone, year: "numeric", month: "2-digit", day: "2-digit",
  }).formatToParts(new Date(value));
  const get = (type) => parts.find((p) => p.type === type).value;
  return `${get("year")}-${get("month")}-${get("day")}`;
}

/** "since 5 min" style durations for the queue. */
export function minutesSince(value, now = Date.now()) {
  return Math.max(0, Math.floor((now - new Date(value).getTime()) / 60000));
}
