// Specialist: weekly consultation hours (replaced as a whole) and one-off exceptions.
import { api, errorMessage, ApiError } from "./api.js";
import { $, h, showAlert, busy } from "./dom.js";
import { t, formatDateTime } from "./i18n.js";

const root = $("#availability");
const errorBox = $("[data-error]", root);
const notice = $("[data-notice]", root);
const rulesList = $("[data-rules]", root);
const WEEKDAYS = () => [t("Monday"), t("Tuesday"), t("Wednesday"), t("Thursday"), t("Friday"), t("Saturday"), t("Sunday")];
let counter = 0;

function ruleRow(rule = { weekday: 0, start_time: "08:00", end_time: "12:00", slot_minutes: 30 }) {
  counter += 1;
  const n = counter;
  const field = (id, text, input) => h("div", { class: "field" }, h("label", { for: id }, text), input);
  const row = h("li", { class: "rule" },
    h("div", { class: "grid two" },
      field(`weekday-${n}`, t("Weekday"), h("select", { id: `weekday-${n}`, name: "weekday" },
        WEEKDAYS().map((name, i) => h("option", { value: String(i), selected: i === rule.weekday }, name)))),
      field(`slot-${n}`, t("Minutes per appointment"), h("input", { id: `slot-${n}`, name: "slot_minutes", type: "number", min: 5, max: 240, step: 5, value: rule.slot_minutes })),
      field(`start-${n}`, t("From"), h("input", { id: `start-${n}`, name: "start_time", type: "time", value: rule.start_time.slice(0, 5), required: true })),
      field(`end-${n}`, t("Until"), h("input", { id: `end-${n}`, name: "end_time", type: "time", value: rule.end_time.slice(0, 5), required: true }))),
    h("button", { type: "button", onclick: () => row.remove() }, t("Remove")));
  return row;
}

async function loadRules() {
  const rules = await api("/api/v1/availability/rules");
  rules.sort((a, b) => a.weekday - b.weekday || a.start_time.localeCompare(b.start_time));
  rulesList.replaceChildren(...rules.map(ruleRow));
}

async function saveRules(event) {
  event.preventDefault();
  const rules = [...rulesList.querySelectorAll("li.rule")].map((li) => ({
    weekday: Number(li.querySelector("[name=weekday]").value),
    start_time: li.querySelector("[name=start_time]").value,
    end_time: li.querySelector("[name=end_time]").value,
    slot_minutes: Number(li.querySelector("[name=slot_minutes]").value),
  }));
  await busy(event.target.querySelector("button[type=submit]"), async () => {
    try {
      await api("/api/v1/availability/rules", { method: "PUT", body: { rules } });
      showAlert(notice, t("Weekly hours saved."), "success");
      showAlert(errorBox, "");
      await loadRules();
    } catch (error) {
      problem(error);
    }
  });
}

async function loadExceptions() {
  const list = $("[data-exceptions]", root);
  const items = await api("/api/v1/availability/exceptions");
  list.replaceChildren(...(items.length ? items.map((e) => h("li", {},
    h("p", {}, h("strong", {}, e.available ? t("Extra hours") : t("Absent")), ` ${formatDateTime(e.starts_at)} – ${formatDateTime(e.ends_at)}`),
    e.conflicting_appointment_ids?.length ? h("p", { class: "alert warning" }, t("{count} booking(s) fall into this absence and were not cancelled.", { count: e.conflicting_appointment_ids.length })) : null,
    h("button", { type: "button", onclick: (ev) => removeException(ev, e.id) }, t("Remove")))) : [h("li", { class: "muted" }, t("None."))]));
}

async function addException(event) {
  event.preventDefault();
  const f = event.target;
  if (!f.starts_at.value || !f.ends_at.value) {
    showAlert(errorBox, t("Please fill in all fields."));
    return;
  }
  await busy(f.querySelector("button[type=submit]"), async () => {
    try {
      await api("/api/v1/availability/exceptions", {
        method: "POST",
        body: { starts_at: f.starts_at.value, ends_at: f.ends_at.value, available: f.available.value === "true" },
      });
      f.reset();
      showAlert(notice, t("Saved."), "success");
      showAlert(errorBox, "");
      await loadExceptions();
    } catch (error) {
      problem(error);
    }
  });
}

async function removeException(event, id) {
  await busy(event.target, async () => {
    try {
      await api(`/api/v1/availability/exceptions/${id}`, { method: "DELETE" });
      await loadExceptions();
    } catch (error) {
      problem(error);
    }
  });
}

function problem(error) {
  const fields = error instanceof ApiError && error.detail.fields;
  const extra = fields ? ` ${fields.map((f) => f.message).join("; ")}` : "";
  showAlert(errorBox, errorMessage(error) + extra);
  errorBox.focus();
}

$("[data-add-rule]", root).addEventListener("click", () => {
  const row = ruleRow();
  rulesList.append(row);
  row.querySelector("select").focus();
});
$("[data-rules-form]", root).addEventListener("submit", saveRules);
$("[data-exception-form]", root).addEventListener("submit", addException);
Promise.all([loadRules(), loadExceptions()]).catch(problem);
