import { api, errorMessage } from "./api.js";
import { showAlert, busy } from "./dom.js";
import { t } from "./i18n.js";

const form = document.getElementById("login-form");
const alertBox = document.getElementById("login-error");
const HOME = { gp: "/gp", specialist: "/specialist" };

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const email = form.email.value.trim();
  const password = form.password.value;
  if (!email || !password) {
    showAlert(alertBox, t("Please enter your email address and password."));
    (email ? form.password : form.email).focus();
    return;
  }
  await busy(form.querySelector("button[type=submit]"), async () => {
    try {
      const me = await api("/api/v1/auth/login", { method: "POST", body: { email, password } });
      const next = form.dataset.next;
      window.location.assign(sameOriginPath(next) || HOME[me.role] || "/");
    } catch (error) {
      // One generic message for wrong email and wrong password (no account probing).
      showAlert(alertBox, errorMessage(error));
      form.password.value = "";
      form.password.focus();
    }
  });
});

/** `next` as a path on this site, or null: resolved the way the browser would resolve it. */
function sameOriginPath(next) {
  if (!next || !next.startsWith("/")) return null;
  const url = new URL(next, window.location.origin);
  return url.origin === window.location.origin ? url.pathname + url.search + url.hash : null;
}
