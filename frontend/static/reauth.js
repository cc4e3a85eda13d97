// Sensitive actions ask for the second factor again (403 reauth_required): a dialog takes the
// code (or a passkey, or the password for an account without a second factor), then the
// action is repeated once. An account that signs in only with the hospital account (no
// password, no second factor: `provider`) confirms there instead: the dialog leads to the
// hospital's sign-in, which comes back to this page, where the action is done again.
import { api, ApiError, errorMessage } from "./api.js";
import { h, showAlert, busy } from "./dom.js";
import { t } from "./i18n.js";
import { assertPasskey, passkeysSupported } from "./webauthn.js";

export async function withReauth(action, { hasFactor = true, hasPasskey = false, provider = false } = {}) {
  try {
    return await action();
  } catch (error) {
    if (!(error instanceof ApiError) || error.code !== "reauth_required") throw error;
    if (provider) {
      await confirmAtProvider();
      return undefined;
    }
    if (!(await confirmIdentity({ hasFactor, hasPasskey }))) return undefined;
    return action();
  }
}

function providerUrl(url = "/auth/oidc/reauth") {
  return `${url}?next=${encodeURIComponent(location.pathname + location.search)}`;
}

function confirmAtProvider() {
  return new Promise((resolve) => {
    const go = h("a", { class: "button primary", href: providerUrl() }, t("Continue to the hospital sign-in"));
    const cancel = h("button", { type: "button" }, t("Cancel"));
    const dialog = h(
      "dialog",
      { class: "card dialog", "aria-labelledby": "reauth-title" },
      h("h2", { id: "reauth-title" }, t("Please confirm it's you")),
      h("p", {}, t("Please sign in again with your hospital account. You then come back to this page and can repeat the action.")),
      h("div", { class: "row" }, go, cancel),
    );
    document.body.append(dialog);
    const finish = () => {
      dialog.close();
      dialog.remove();
      resolve(false);
    };
    cancel.addEventListener("click", finish);
    dialog.addEventListener("cancel", finish);
    dialog.showModal();
    go.focus();
  });
}

function confirmIdentity({ hasFactor, hasPasskey }) {
  return new Promise((resolve) => {
    const alertBox = h("div", { class: "alert error", role: "alert", hidden: true });
    const input = hasFactor
      ? h("input", { id: "reauth-code", inputmode: "numeric", autocomplete: "one-time-code", maxlength: "20", required: true })
      : h("input", { id: "reauth-code", type: "password", autocomplete: "current-password", required: true });
    const submit = h("button", { type: "submit", class: "primary" }, t("Confirm"));
    const cancel = h("button", { type: "button" }, t("Cancel"));
    const passkey = hasPasskey && passkeysSupported()
      ? h("button", { type: "button" }, t("Use a passkey"))
      : null;
    const form = h(
      "form",
      { method: "dialog", novalidate: true },
      h("h2", {}, t("Please confirm it's you")),
      h("p", {}, hasFactor ? t("Enter the 6-digit code from your authenticator app.") : t("Enter your password.")),
      alertBox,
      h("div", { class: "field" }, h("label", { for: "reauth-code" }, hasFactor ? t("Code") : t("Password")), input),
      h("div", { class: "row" }, submit, passkey, cancel),
    );
    const dialog = h("dialog", { class: "card dialog", "aria-labelledby": "reauth-title" }, form);
    form.querySelector("h2").id = "reauth-title";
    document.body.append(dialog);
    const finish = (ok) => {
      dialog.close();
      dialog.remove();
      resolve(ok);
    };
    const send = async (body) => {
      try {
        await api("/api/v1/auth/reauth", { method: "POST", body });
        finish(true);
      } catch (error) {
        if (error instanceof ApiError && error.code === "reauth_at_provider") {
          location.assign(providerUrl(error.detail.url));
          return;
        }
        showAlert(alertBox, errorMessage(error));
        input.value = "";
        input.focus();
      }
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!input.value.trim()) return showAlert(alertBox, t("Please enter the code."));
      busy(submit, () => send(hasFactor ? { code: input.value.trim() } : { password: input.value }));
    });
    cancel.addEventListener("click", () => finish(false));
    dialog.addEventListener("cancel", () => finish(false));
    if (passkey) {
      passkey.addEventListener("click", () =>
        busy(passkey, async () => {
          try {
            await send({ credential: await assertPasskey() });
          } catch (error) {
            showAlert(alertBox, errorMessage(error));
          }
        }),
      );
    }
    dialog.showModal();
    input.focus();
  });
}
