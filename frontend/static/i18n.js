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

// Right to left (Arabic): each filled-in value is a bidi isolate (FSI … PDI), so a Latin name
// or "(Kardiologie)" keeps its own order and brackets inside the Arabic sentence.
const isolate = root.dir === "rtl" ? (value) => `\u2068${value}\u2069` : (value) => value;

// A translation may choose its words by a number: "{minutes, plural, one {# minutę} few
// {# minuty} many {# minut} other {# minuty}}" (Polish, Ukrainian and Arabic have more forms
// than English). Intl.PluralRules picks the form, "=2 {…}" matches exactly; # is the number.
const PLURAL = /\{(\w+), plural,((?:\s*(?:=\d+|zero|one|two|few|many|other)\s*\{[^{}]*(?:\{\w+\}[^{}]*)*\})+)\s*\}/g;
const FORM = /(=\d+|zero|one|two|few|many|other)\s*\{([^{}]*(?:\{\w+\}[^{}]*)*)\}/g;
let pluralRules = null;

function plural(text, values) {
  return text.replace(PLURAL, (all, key, forms) => {
    if (!(key in values)) return all;
    const n = Number(values[key]);
    pluralRules ||= new Intl.PluralRules(locale);
    const found = Object.fromEntries([...forms.matchAll(FORM)].map(([, name, form]) => [name, form]));
    return (found[`=${n}`] ?? found[pluralRules.select(n)] ?? found.other ?? "").replace(/#/g, `{${key}}`);
  });
}

/** The translation of `message`; `{name}` placeholders are filled from `values`. */
export function t(message, values = {}) {
  const text = plural(catalog[message] || message, values);
  return text.replace(/\{(\w+)\}/g, (all, key) => (key in values ? isolate(String(values[key])) : all));
}

// Dates, times and numbers the patient's way; Arabic with Western digits and the 24-hour
// clock, as the invitation letter writes the appointment.
const LOCALES = { de: "de-DE", en: "en-GB", tr: "tr-TR", ar: "ar-u-nu-latn-hc-h23", uk: "uk-UA", pl: "pl-PL" };
const locale = LOCALES[lang] || "de-DE";

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
