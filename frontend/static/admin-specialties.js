// Admin: specialties (create, rename) and which specialist belongs to which specialty.
import { api } from "./api.js";
import { $, h, showAlert, busy } from "./dom.js";
import { t, lang } from "./i18n.js";
import { withReauth } from "./reauth.js";
import { reauthOptions, showProblem, fillSelect, wireDialog } from "./admin-common.js";

const root = $("#admin-specialties");
const notice = $("[data-notice]", root);
const errorBox = $("[data-error]", root);
const list = $("[data-specialties-list]", root);
const dialog = $("#specialty-dialog");
const editForm = $("[data-edit]", dialog);
let specialties = [];
let editing = null;

const nameOf = (s) => (lang === "de" ? s.name_de : s.name_en);

async function load() {
  let users;
  [specialties, users] = await Promise.all([api("/api/v1/specialties"), api("/api/v1/admin/users")]);
  const specialists = users.filter((u) => u.role === "specialist");
  list.replaceChildren(...(specialties.length ? specialties.map((s) => specialtyItem(s, specialists.filter((u) => u.specialty_id === s.id))) : [h("li", { class: "muted" }, t("None."))]));
}

function specialtyItem(specialty, members) {
  const headingId = `specialty-${specialty.id}`;
  return h("li", {},
    h("div", { class: "row spread" },
      h("div", {},
        h("h3", { id: headingId }, nameOf(specialty)),
        h("div", { class: "muted" }, `${specialty.name_de} / ${specialty.name_en} · ${specialty.slug}`)),
      h("button", { type: "button", onclick: () => openEdit(specialty) }, t("Rename"))),
    members.length
      ? h("ul", { class: "list nested" }, members.map((u) => memberItem(u, specialty)))
      : h("p", { class: "muted" }, t("No specialist yet.")));
}

function memberItem(user, specialty) {
  const id = `move-${user.id}`;
  const select = h("select", { id });
  fillSelect(select, specialties.map((s) => [s.id, nameOf(s)]), specialty.id);
  const save = h("button", { type: "button", onclick: () => move(save, user, Number(select.value)) }, t("Save"));
  return h("li", { class: "row spread" },
    h("div", {}, h("strong", {}, user.display_name), user.is_active ? "" : h("span", { class: "muted" }, " (" + t("deactivated") + ")")),
    h("div", { class: "row" },
      h("label", { for: id, class: "visually-hidden" }, t("Specialty of {name}", { name: user.display_name })),
      select, save));
}

function done(message) {
  showAlert(errorBox, "");
  showAlert(notice, message, "success");
}

async function move(button, user, specialtyId) {
  if (specialtyId === user.specialty_id) return;
  await busy(button, async () => {
    try {
      const changed = await withReauth(
        () => api(`/api/v1/admin/users/${user.id}`, { method: "PATCH", body: { specialty_id: specialtyId } }),
        reauthOptions(root),
      );
      if (!changed) return;
      done(t("Saved."));
      await load();
    } catch (error) {
      showProblem(errorBox, error);
    }
  });
}

function openEdit(specialty) {
  editing = specialty;
  editForm.name_de.value = specialty.name_de;
  editForm.name_en.value = specialty.name_en;
  showAlert($("[data-edit-error]", dialog), "");
  dialog.showModal();
  editForm.name_de.focus();
}

editForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const box = $("[data-edit-error]", dialog);
  if (!editForm.name_de.value.trim() || !editForm.name_en.value.trim()) return showAlert(box, t("Please fill in all fields."));
  const body = { name_de: editForm.name_de.value.trim(), name_en: editForm.name_en.value.trim() };
  await busy(editForm.querySelector("button[type=submit]"), async () => {
    try {
      await api(`/api/v1/specialties/${editing.id}`, { method: "PATCH", body });
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
  if (!f.name_de.value.trim() || !f.name_en.value.trim() || !f.slug.value.trim()) {
    showAlert(errorBox, t("Please fill in all fields."));
    errorBox.focus();
    return;
  }
  const body = { slug: f.slug.value.trim().toLowerCase(), name_de: f.name_de.value.trim(), name_en: f.name_en.value.trim() };
  await busy(f.querySelector("button[type=submit]"), async () => {
    try {
      const created = await api("/api/v1/specialties", { method: "POST", body });
      f.reset();
      done(t("Specialty {name} created.", { name: nameOf(created) }));
      await load();
    } catch (error) {
      showProblem(errorBox, error);
    }
  });
});

wireDialog(dialog);
load().catch((error) => showProblem(errorBox, error));
