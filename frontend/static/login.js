import { api, errorMessage, setCsrfToken } from "./api.js";
import { showAlert, showStep, busy } from "./dom.js";
import { t } from "./i18n.js";
import { assertPasskey, passkeysSupported } from "./webauthn.js";

const root = document.getElementById("login");
const form = document.getElementById("login-form");
const codeForm = document.getElementById("code-form");
const alertBox = document.getElementById("login-error");
const codeAlert = document.getElementById("code-error");
const passkeyButton = document.getElementById("use-passkey");
const HOME = { gp: "/gp", specialist: "/specialist", admin: "/admin" };

if (root.dataset.stage === "second_factor") {
  // Back from the hospital's provider (or a reload): the password step is done.
  api("/api/v1/auth/me").then(signedIn, () => showStep(root, "password", { focus: false }));
}

if (new URLSearchParams(window.location.search).get("reason") === "idle") {
  showAlert(alertBox, t("You were signed out because nothing happened for a while. Please sign in again."), "info");
}

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
      setCsrfToken(me.csrf_token);
      form.password.value = "";
      signedIn(me);
    } catch (error) {
      // One generic message for wrong email and wrong password (no account probing).
      showAlert(alertBox, errorMessage(error));
      form.password.value = "";
      form.password.focus();
    }
  });
});

function signedIn(me) {
  const next = sameOriginPath(root.dataset.next);
  if (me.stage === "second_factor") {
    passkeyButton.hidden = !(me.second_factors.includes("webauthn") && passkeysSupported());
    document.getElementById("code-hint").hidden = !me.second_factors.includes("totp");
    showStep(root, "code");
    codeForm.code.focus();
  } else if (me.stage === "enrol") {
    window.location.assign(`/account?next=${encodeURIComponent(next || HOME[me.role] || "/")}`);
  } else {
    window.location.assign(next || HOME[me.role] || "/");
  }
}

async function sendSecondFactor(body, button) {
  await busy(button, async () => {
    try {
      const me = await api("/api/v1/auth/second-factor", { method: "POST", body });
      signedIn(me);
    } catch (error) {
      if (error.code === "not_authenticated") {
        // Ten minutes passed: start again with the password.
        showStep(root, "password");
        showAlert(alertBox, t("Please sign in again."), "info");
        return;
      }
      showAlert(codeAlert, error.name === "NotAllowedError" ? t("The passkey was not used.") : errorMessage(error));
      codeForm.code.value = "";
      codeForm.code.focus();
    }
  });
}

codeForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const code = codeForm.code.value.trim();
  if (!code) {
    showAlert(codeAlert, t("Please enter the code."));
    codeForm.code.focus();
    return;
  }
  sendSecondFactor({ code }, codeForm.querySelector("button[type=submit]"));
});

passkeyButton.addEventListener("click", async () => {
  try {
    const credential = await assertPasskey();
    await sendSecondFactor({ credential }, passkeyButton);
  } catch (error) {
    showAlert(codeAlert, error.name === "NotAllowedError" ? t("The passkey was not used.") : errorMessage(error));
  }
});

/** `next` as a path on this site, or null: resolved the way the browser would resolve it. */
function sameOriginPath(next) {
  if (!next || !next.startsWith("/")) return null;
  const url = new URL(next, window.location.origin);
  return url.origin === window.location.origin ? url.pathname + url.search + url.hash : null;
}
