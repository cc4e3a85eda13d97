// Admin: staff accounts. List with search, create, edit (name, role, practice, specialty),
// deactivate / reactivate, reset two-factor sign-in. Changes need a recent second factor
// (withReauth shows the dialog and repeats the request).
import { api } from "./api.js";
import { $, $$, h, showAlert, busy } from "./dom.js";
import { t } from "./i18n.js";
import { withReauth } from "./reauth.js";
import { ROLE, reauthOptions, showProblem, confirmAction, fillSelect, wireDialog } from "./admin-common.js";

const root = $("#admin-accounts");
const me = Number(root.dataset.me);
const notice = $("[data-notice]", root);
const errorBox = $("[data-error]", root);
const list = $("[data-accounts]", root);
const search = $("#account-search");
const editDialog = $("#edit-dialog");
const editForm = $("[data-edit]", editDialog);
let users = [];
let practices = [];
let specialties = [];
let editing = null;

const reauth = (action) => withReauth(action, reauthOptions(root));
const practiceName = (id) => practices.find((p) => p.id === id)?.name || "";
const specialtyName = (id) => {
  const found = specialties.find((s) => s.id === id);
  return found ? (document.documentElement.lang === "de" ? found.name_de : found.name_en) : "";
};

async function load() {
  [users, practices, specialties] = await Promise.all([
    api("/api/v1/admin/users"),
    api("/api/v1/practices"),
    api("/api/v1/specialties"),
  ]);
  const practicePairs = [["", t("Choose a practice")], ...practices.map((p) => [p.id, `${p.name} (${p.town})`])];
  const specialtyPairs = [["", t("Choose a specialty")], ...specialties.map((s) => [s.id, specialtyName(s.id)])];
  for (const select of $$("[data-practices]", root)) fillSelect(select, practicePairs, select.value);
  for (const select of $$("[data-specialties]", root)) fillSelect(select, specialtyPairs, select.value);
  render();
}

function render() {
  const query = search.value.trim().toLowerCase();
  const shown = users.filter((u) => !query || u.display_name.toLowerCase().includes(query) || u.email.includes(query));
  $("[data-count]", root).textContent = t("{shown} of {total} accounts", { shown: shown.length, total: users.length });
  list.replaceChildren(...(shown.length ? shown.map(accountItem) : [h("li", { class: "muted" }, t("No account matches the search."))]));
}

function accountItem(user) {
  const self = user.id === me;
  const where = user.role === "gp" ? practiceName(user.practice_id) : user.role === "specialist" ? specialtyName(user.specialty_id) : "";
  return h("li", { class: "account", dataset: { id: user.id } },
    h("div", { class: "account-main" },
      h("strong", {}, user.display_name), self ? h("span", { class: "muted" }, " (" + t("you") + ")") : null,
      h("div", { class: "muted" }, user.email),
      h("div", { class: "badges" },
        h("span", { class: "badge" }, ROLE[user.role]()),
        user.is_active ? h("span", { class: "badge ok" }, t("Active")) : h("span", { class: "badge off" }, t("Deactivated")),
        user.second_factor
          ? h("span", { class: "badge ok" }, t("Two-factor: set up"))
          : h("span", { class: "badge warn" }, t("Two-factor: not set up")),
        user.single_sign_on ? h("span", { class: "badge" }, t("Single sign-on")) : null),
      where ? h("div", {}, where) : null,
      user.lanr ? h("div", { class: "muted" }, t("LANR {number}", { number: user.lanr })) : null),
    h("div", { class: "row actions" },
      h("button", { type: "button", onclick: () => openEdit(user) }, t("Edit")),
      self ? null : user.is_active
        ? h("button", { type: "button", onclick: (e) => deactivate(e.currentTarget, user) }, t("Deactivate"))
        : h("button", { type: "button", onclick: (e) => setActive(e.currentTarget, user, true) }, t("Reactivate")),
      self ? null : h("button", { type: "button", onclick: (e) => resetFactor(e.currentTarget, user) }, t("Reset two-factor"))));
}

function done(message) {
  showAlert(errorBox, "");
  showAlert(notice, message, "success");
}

async function deactivate(button, user) {
  const ok = await confirmAction({
    title: t("Deactivate {name}?", { name: user.display_name }),
    text: t("The person is signed out at once and can no longer sign in. Their appointments stay. You can reactivate the account later."),
    confirmLabel: t("Deactivate"),
  });
  if (ok) await setActive(button, user, false);
}

async function setActive(button, user, active) {
  await busy(button, async () => {
    try {
      const changed = await reauth(() => api(`/api/v1/admin/users/${user.id}`, { method: "PATCH", body: { is_active: active } }));
      if (!changed) return;
      done(active ? t("{name} can sign in again.", { name: user.display_name }) : t("{name} is deactivated.", { name: user.display_name }));
      await load();
    } catch (error) {
      showProblem(errorBox, error);
    }
  });
}

async function resetFactor(button, user) {
  const ok = await confirmAction({
    title: t("Reset two-factor sign-in of {name}?", { name: user.display_name }),
    warning: t("Verify the person first: call them back on a phone number you already know (from the staff directory, not one they give you now). Whoever gets a reset can take over the account with its password."),
    text: t("Every second factor and recovery code of the account is removed and it is signed out everywhere. At the next sign-in the person sets up a new second factor."),
    check: t("I called the person back on a known number and verified them."),
    confirmLabel: t("Reset two-factor"),
  });
  if (!ok) return;
  await busy(button, async () => {
    try {
      const answer = await reauth(async () => {
        await api(`/api/v1/admin/users/${user.id}/second-factor-reset`, { method: "POST" });
        return true;
      });
      if (!answer) return;
      done(t("Two-factor sign-in of {name} was reset.", { name: user.display_name }));
      await load();
    } catch (error) {
      showProblem(errorBox, error);
    }
  });
}

/** Shows the practice or specialty field that fits the chosen role. */
function showRoleFields(form) {
  const role = $("[data-role-select]", form).value;
  for (const field of $$("[data-for-role]", form)) field.hidden = field.dataset.forRole !== role;
  for (const field of $$("[data-for-doctors]", form)) field.hidden = role === "admin";
}

function assignment(form) {
  const role = form.role.value;
  const lanr = form.lanr.value.trim() || null; // none removes it
  if (role === "gp") return { practice_id: form.practice_id.value ? Number(form.practice_id.value) : null, lanr };
  if (role === "specialist") return { specialty_id: form.specialty_id.value ? Number(form.specialty_id.value) : null, lanr };
  return {};
}

function openEdit(user) {
  editing = user;
  editForm.display_name.value = user.display_name;
  editForm.role.value = user.role;
  editForm.practice_id.value = user.practice_id ?? "";
  editForm.specialty_id.value = user.specialty_id ?? "";
  editForm.lanr.value = user.lanr ?? "";
  // Admins cannot give up their own admin role: the choice is not offered.
  for (const option of editForm.role.options) option.disabled = user.id === me && option.value !== "admin";
  $("[data-edit-email]", editDialog).textContent = user.email;
  showAlert($("[data-edit-error]", editDialog), "");
  showRoleFields(editForm);
  editDialog.showModal();
  editForm.display_name.focus();
}

editForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const box = $("[data-edit-error]", editDialog);
  if (!editForm.display_name.value.trim()) return showAlert(box, t("Please enter a name."));
  const body = { display_name: editForm.display_name.value.trim(), role: editForm.role.value, ...assignment(editForm) };
  await busy(editForm.querySelector("button[type=submit]"), async () => {
    try {
      const changed = await reauth(() => api(`/api/v1/admin/users/${editing.id}`, { method: "PATCH", body }));
      if (!changed) return;
      editDialog.close();
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
  if (!f.display_name.value.trim() || !f.email.value.trim() || !f.password.value) {
    showAlert(errorBox, t("Please fill in all fields."));
    errorBox.focus();
    return;
  }
  const body = {
    display_name: f.display_name.value.trim(),
    email: f.email.value.trim(),
    role: f.role.value,
    password: f.password.value,
    ...assignment(f),
  };
  await busy(f.querySelector("button[type=submit]"), async () => {
    try {
      const created = await reauth(() => api("/api/v1/admin/users", { method: "POST", body }));
      if (!created) return;
      f.reset();
      showRoleFields(f);
      done(t("Account created for {name}.", { name: created.display_name }));
      await load();
    } catch (error) {
      showProblem(errorBox, error);
    }
  });
});

for (const form of [createForm, editForm]) {
  $("[data-role-select]", form).addEventListener("change", () => showRoleFields(form));
}
wireDialog(editDialog);
search.addEventListener("input", render);
load().catch((error) => showProblem(errorBox, error));
