// Admin: the audit log. Filters (also in the address bar, so a reload keeps them), pages of
// 50 newest first, and the same filters as a CSV download.
import { api } from "./api.js";
import { $, h, busy, showAlert } from "./dom.js";
import { t, lang, timeZone } from "./i18n.js";
import { showProblem } from "./admin-common.js";

const root = $("#admin-audit");
const errorBox = $("[data-error]", root);
const form = $("[data-filter]", root);
const body = $("[data-events]", root);
const more = $("[data-more]", root);
const csv = $("[data-csv]", root);
const FIELDS = ["action", "actor_id", "appointment_id", "from", "to"];
// Offered in the action field; any other action (or group: "login") can be typed.
const ACTIONS = [
  "appointment", "appointment.booked", "appointment.cancelled", "appointment.rescheduled",
  "audit.exported", "availability", "conversation.posted", "document", "fhir_client",
  "fhir_client.token", "link", "link.redeemed", "link.rejected",
  "login", "login.failure", "login.success", "logout", "practice", "report.downloaded",
  "report.written", "room", "second_factor", "second_factor.reset", "session.ended", "specialty",
  "sso.login", "user", "user.created", "user.deactivated", "user.lanr_changed", "user.role_changed",
];
const KIND = {
  patient: () => t("Patient"), anonymous: () => t("Not signed in"), system: () => t("System"),
  fhir_client: () => t("FHIR system client"),
};
const time = new Intl.DateTimeFormat(lang === "de" ? "de-DE" : "en-GB", {
  timeZone, day: "2-digit", month: "2-digit", year: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
});
let names = new Map();
let nextBefore = null;

function filters() {
  const params = new URLSearchParams();
  for (const name of FIELDS) {
    const value = form.elements[name].value.trim();
    if (value) params.set(name, value);
  }
  return params;
}

function who(event) {
  if (event.actor_kind === "staff" && event.actor_id != null) {
    return names.get(event.actor_id) || t("Staff no. {id}", { id: event.actor_id });
  }
  return KIND[event.actor_kind] ? KIND[event.actor_kind]() : event.actor_kind;
}

function details(event) {
  const parts = Object.entries(event.detail || {}).map(([key, value]) => `${key}=${typeof value === "object" ? JSON.stringify(value) : value}`);
  if (event.reduced_at) parts.push(t("(reduced to ids)"));
  return parts.join(" ");
}

// Each cell carries its column's name: on a phone the rows show as small cards (app.css).
const HEADINGS = [...root.querySelectorAll("thead th")].map((th) => th.textContent.trim());

function row(event) {
  const values = [
    String(event.id),
    time.format(new Date(event.at)),
    h("code", {}, event.action),
    who(event),
    event.appointment_id == null ? null : String(event.appointment_id),
    event.ip || null,
    details(event) || null,
  ];
  return h("tr", {}, values.map((value, i) => h("td", { dataset: { label: HEADINGS[i] } }, value)));
}

async function show({ append = false } = {}) {
  const params = filters();
  csv.href = `/api/v1/admin/audit.csv${params.size ? `?${params}` : ""}`;
  if (!append) window.history.replaceState(null, "", `${window.location.pathname}${params.size ? `?${params}` : ""}`);
  if (append && nextBefore) params.set("before_id", String(nextBefore));
  const page = await api(`/api/v1/admin/audit?${params}`);
  const rows = page.events.map(row);
  if (append) body.append(...rows);
  else body.replaceChildren(...rows);
  showAlert(errorBox, "");
  nextBefore = page.next_before_id;
  more.hidden = !nextBefore;
  $("[data-empty]", root).hidden = body.children.length > 0;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  busy(event.submitter || form.querySelector("button[type=submit]"), () => show().catch((error) => showProblem(errorBox, error)));
});
form.addEventListener("reset", () => setTimeout(() => show().catch((error) => showProblem(errorBox, error))));
more.addEventListener("click", () => busy(more, () => show({ append: true }).catch((error) => showProblem(errorBox, error))));

async function start() {
  $("#audit-actions").replaceChildren(...ACTIONS.map((a) => h("option", { value: a })));
  const query = new URLSearchParams(window.location.search);
  const users = await api("/api/v1/admin/users");
  names = new Map(users.map((u) => [u.id, u.display_name]));
  const actor = $("[data-actors]", root);
  actor.append(...users.map((u) => h("option", { value: u.id }, `${u.display_name} (${u.email})`)));
  for (const name of FIELDS) if (query.has(name)) form.elements[name].value = query.get(name);
  await show();
}
start().catch((error) => showProblem(errorBox, error));
