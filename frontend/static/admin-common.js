// Shared by the admin pages: error texts, the confirmation dialog, edit dialogs, and what the
// re-auth dialog should ask for.
import { ApiError, errorMessage } from "./api.js";
import { $, showAlert } from "./dom.js";
import { t } from "./i18n.js";

export const ROLE = { gp: () => t("GP"), specialist: () => t("Specialist"), admin: () => t("Administrator") };

// Field errors the pages translate themselves; others show the server's (German) text.
const FIELD = {
  phone: () => t("The phone number is not valid. Please include the area code, e.g. 03563 123456 or +49 3563 123456."),
};

/**
 * For withReauth(): a code, a passkey, without a second factor the password, or (an account
 * with neither, data-reauth="provider") a new sign-in with the hospital account.
 */
export function reauthOptions(root) {
  const kinds = (root.dataset.factors || "").split(" ").filter(Boolean);
  return {
    hasFactor: kinds.length > 0,
    hasPasskey: kinds.includes("webauthn"),
    provider: root.dataset.reauth === "provider" && kinds.length === 0,
  };
}

/** The error's message, with the message of each field the server named. */
export function problemText(error) {
  const fields = (error instanceof ApiError && error.detail.fields) || [];
  const extra = fields.map((f) => (FIELD[f.field] ? FIELD[f.field]() : f.message));
  const main = error instanceof ApiError && error.code === "invalid_input" && extra.length ? [] : [errorMessage(error)];
  return [...main, ...new Set(extra)].join(" ");
}

/** Shows the error in `box` and moves focus there (screen readers announce it). */
export function showProblem(box, error) {
  showAlert(box, problemText(error));
  box.focus?.();
}

/**
 * Asks before a consequential action. Resolves to true when confirmed. With `check`, the
 * confirm button works only once the box is ticked (e.g. "I called the person back").
 */
export function confirmAction({ title, text, warning = "", check = "", confirmLabel }) {
  const dialog = $("#confirm-dialog");
  const box = $("#confirm-check");
  const error = $("#confirm-error");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-warning").textContent = warning;
  $("#confirm-warning").hidden = !warning;
  $("#confirm-check-label").hidden = !check;
  $("#confirm-check-text").textContent = check;
  $("#confirm-ok").textContent = confirmLabel;
  box.checked = false;
  showAlert(error, "");
  return new Promise((resolve) => {
    const form = dialog.querySelector("form");
    const done = (ok) => {
      form.removeEventListener("submit", submit);
      $("#confirm-cancel").removeEventListener("click", cancel);
      dialog.removeEventListener("cancel", cancel);
      if (dialog.open) dialog.close();
      resolve(ok);
    };
    const submit = (event) => {
      event.preventDefault();
      if (check && !box.checked) {
        showAlert(error, t("Please confirm that you have verified the person."));
        box.focus();
        return;
      }
      done(true);
    };
    const cancel = (event) => {
      event?.preventDefault();
      done(false);
    };
    form.addEventListener("submit", submit);
    $("#confirm-cancel").addEventListener("click", cancel);
    dialog.addEventListener("cancel", cancel);
    dialog.showModal();
    (check ? box : $("#confirm-cancel")).focus();
  });
}

/** Options for a <select>: [value, label] pairs, `selected` marked. */
export function fillSelect(select, pairs, selected) {
  select.replaceChildren(
    ...pairs.map(([value, label]) => {
      const option = document.createElement("option");
      option.value = String(value);
      option.textContent = label;
      option.selected = String(value) === String(selected ?? "");
      return option;
    }),
  );
}

/** Closes an edit dialog on its cancel button and Escape. */
export function wireDialog(dialog) {
  dialog.querySelector("[data-edit-cancel]").addEventListener("click", () => dialog.close());
}
