// Admin: GP practices with town and phone number (stored in E.164 by the server).
import { api } from "./api.js";
import { $, h, showAlert, busy } from "./dom.js";
import { t } from "./i18n.js";
import { showProblem, wireDialog } from "./admin-common.js";

const root = $("#admin-practices");
const notice = $("[data-notice]", root);
const errorBox = $("[data-error]", root);
const list = $("[data-practices-list]", root);
const dialog = $("#practice-dialog");
const editForm = $("[data-edit]", dialog);
let editing = null;

async function load() {
  const [practices, users] = await Promise.all([api("/api/v1/practices"), api("/api/v1/admin/users")]);
  const gps = (id) => users.filter((u) => u.role === "gp" && u.practice_id === id && u.is_active).length;
  list.replaceChildren(...(practices.length ? practices.map((p) => h("li", { class: "row spread" },
    h("div", {},
      h("strong", {}, p.name), ` · ${p.town}`,
      h("div", {}, p.phone ? h("a", { href: `tel:${p.phone}` }, p.phone) : h("span", { class: "muted" }, t("No phone number"))),
      p.bsnr ? h("div", {}, t("BSNR {number}", { number: p.bsnr })) : null,
      h("div", { class: "muted" }, t("{count} active GP account(s)", { count: gps(p.id) }))),
    h("button", { type: "button", onclick: () => openEdit(p) }, t("Edit")))) : [h("li", { class: "muted" }, t("None."))]));
}

function done(message) {
  showAlert(errorBox, "");
  showAlert(notice, message, "success");
}

function openEdit(practice) {
  editing = practice;
  editForm.name.value = practice.name;
  editForm.town.value = practice.town;
  editForm.phone.value = practice.phone || "";
  editForm.bsnr.value = practice.bsnr || "";
  showAlert($("[data-edit-error]", dialog), "");
  dialog.showModal();
  editForm.name.focus();
}

editForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const box = $("[data-edit-error]", dialog);
  if (!editForm.name.value.trim() || !editForm.town.value.trim()) return showAlert(box, t("Please fill in all fields."));
  const body = {
    name: editForm.name.value.trim(), town: editForm.town.value.trim(),
    phone: editForm.phone.value.trim() || null, bsnr: editForm.bsnr.value.trim() || null,
  };
  await busy(editForm.querySelector("button[type=submit]"), async () => {
    try {
      await api(`/api/v1/practices/${editing.id}`, { method: "PATCH", body });
      dialog.close();
      done(t("Saved."));
      await load();
    } catch (error) {
      showProblem(box, error);
    }
  });
});

const createForm = $("[data-create]", root);
createForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const f = createForm;
  if (!f.name.value.trim() || !f.town.value.trim()) {
    showAlert(errorBox, t("Please fill in all fields."));
    errorBox.focus();
    return;
  }
  const body = {
    name: f.name.value.trim(), town: f.town.value.trim(),
    phone: f.phone.value.trim() || null, bsnr: f.bsnr.value.trim() || null,
  };
  await busy(f.querySelector("button[type=submit]"), async () => {
    try {
      const created = await api("/api/v1/practices", { method: "POST", body });
      f.reset();
      done(t("Practice {name} created.", { name: created.name }));
      await load();
    } catch (error) {
      showProblem(errorBox, error);
    }
  });
});

wireDialog(dialog);
load().catch((error) => showProblem(errorBox, error));
