// GP: own bookings, upcoming first; past and cancelled on request.
import { api, errorMessage } from "./api.js";
import { $, h, showAlert } from "./dom.js";
import { t, formatDate, formatDateTime } from "./i18n.js";
import { STATUS, ROOM, label } from "./labels.js";
import { onCallState, onCallTitle } from "./gp-on-call.js";

const root = $("#gp-appointments");
const list = $("[data-list]", root);
const showPast = $("[data-show-past]", root);

async function load() {
  let items;
  try {
    items = await api("/api/v1/appointments?limit=200");
  } catch (error) {
    showAlert($("[data-error]", root), errorMessage(error));
    return;
  }
  const now = Date.now();
  const visible = items
    // A written Telekonsil has no time: it stays on the list until it is answered; one the
    // specialist declined stays two weeks, so the GP reads why (and is e-mailed).
    .filter((a) => showPast.checked || declinedRecently(a, now) || (a.status === "booked" && (a.kind === "written" || new Date(a.ends_at).getTime() > now - 3600 * 1000)))
    .sort((a, b) => new Date(a.starts_at) - new Date(b.starts_at));
  if (visible.length === 0) {
    list.replaceChildren(h("li", { class: "muted" }, t("No bookings.")));
    return;
  }
  list.replaceChildren(...visible.map((a) => h("li", { dataset: { appointment: a.id } },
    h("p", {}, h("a", { href: `/gp/appointments/${a.id}` }, `${formatDateTime(a.starts_at)} – ${a.patient_name}`)),
    h("p", { class: "row" },
      h("span", {}, withWhom(a)),
      onCallBadge(a),
      h("span", { class: `badge ${a.status}` }, a.status === "cancelled" && a.cancelled_by === "specialist" ? t("Declined by the specialist") : label(STATUS, a.status)),
      a.status === "booked" && a.kind !== "written" ? h("span", { class: `badge ${a.room_state}` }, label(ROOM, a.room_state)) : null,
      a.kind === "written" && a.status === "booked" && a.answer_by ? h("span", { class: "badge" }, t("Answer needed by {date}", { date: formatDate(`${a.answer_by}T12:00:00Z`) })) : null,
      a.urgency === "urgent" ? h("span", { class: "badge urgent" }, t("Urgent")) : null,
      a.has_report ? h("span", { class: "badge" }, t("Report available")) : null,
      a.question_open_since ? h("span", { class: "badge warn" }, t("Question from the specialist")) : null))));
}

function declinedRecently(a, now) {
  return a.status === "cancelled" && a.cancelled_by === "specialist" && a.cancelled_at
    && new Date(a.cancelled_at).getTime() > now - 14 * 24 * 3600 * 1000;
}

/** "Dr. Minh Nguyen (Kardiologie)"; an on-call request "On-call consult · Kardiologie" and a
 * written one "Written Telekonsil · Kardiologie", with the specialist once one has taken it. */
function withWhom(a) {
  if (a.kind === "written") {
    const title = t("Written Telekonsil · {specialty}", { specialty: a.specialty });
    return a.specialist_name ? `${title} · ${a.specialist_name}` : title;
  }
  if (a.kind !== "on_call") return `${a.specialist_name} (${a.specialty})`;
  return a.specialist_name ? `${onCallTitle(a)} · ${a.specialist_name}` : onCallTitle(a);
}

function onCallBadge(a) {
  if (a.kind === "written" && a.status === "booked" && !a.specialist_id) return h("span", { class: "badge waiting" }, t("Waiting to be taken"));
  if (a.kind !== "on_call") return null;
  const state = onCallState(a);
  if (state === "waiting") return h("span", { class: "badge waiting" }, t("Waiting to be taken"));
  if (state === "unclaimed") return h("span", { class: "badge warn" }, t("Nobody has taken it yet"));
  return null;
}

showPast.addEventListener("change", load);
load();
