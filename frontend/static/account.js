// "My account": second factors (authenticator app, passkeys), recovery codes, and where the
// staff member is signed in. Also the compulsory set-up right after a password-only sign-in.
import { api, errorMessage, setCsrfToken } from "./api.js";
import { $, h, showAlert, busy } from "./dom.js";
import { t, formatDateTime } from "./i18n.js";
import { withReauth } from "./reauth.js";
import { createPasskey, passkeysSupported } from "./webauthn.js";

const root = $("#account");
const enrolling = root.dataset.stage === "enrol";
const alertBox = $("#tf-alert");
const KIND = { totp: () => t("Authenticator app"), webauthn: () => t("Passkey or security key") };
let state = { factors: [], recovery_codes_left: 0, required: false };

async function loadFactors() {
  state = await api("/api/v1/account/second-factors");
  const list = $("#factor-list");
  list.replaceChildren(
    ...state.factors.map((factor) =>
      h("li", { class: "row spread" },
        h("div", {},
          h("strong", {}, factor.label), factor.label === KIND[factor.kind]() ? "" : ` · ${KIND[factor.kind]()}`,
          h("div", { class: "muted" },
            t("Set up {date}", { date: formatDateTime(factor.created_at) }),
            factor.last_used_at ? " · " : "",
            factor.last_used_at ? t("last used {date}", { date: formatDateTime(factor.last_used_at) }) : "")),
        enrolling ? null : h("button", { type: "button", onclick: (e) => removeFactor(e.currentTarget, factor) }, t("Remove")),
      ),
    ),
  );
  $("#no-factor").hidden = state.factors.length > 0;
  $("#codes-left").textContent = state.factors.length
    ? t("{count} of 10 recovery codes left.", { count: state.recovery_codes_left })
    : "";
  $("#new-codes").hidden = enrolling || state.factors.length === 0;
}

const reauthOptions = () => ({
  hasFactor: state.factors.length > 0,
  hasPasskey: state.factors.some((f) => f.kind === "webauthn"),
  provider: root.dataset.reauth === "provider" && state.factors.length === 0,
});

async function removeFactor(button, factor) {
  if (!window.confirm(t("Remove “{label}”? You can no longer sign in with it.", { label: factor.label }))) return;
  await busy(button, async () => {
    try {
      await withReauth(() => api(`/api/v1/account/second-factors/${factor.id}`, { method: "DELETE" }), reauthOptions());
      showAlert(alertBox, t("Removed."), "success");
      await loadFactors();
    } catch (error) {
      showAlert(alertBox, errorMessage(error));
    }
  });
}

$("#add-totp").addEventListener("click", (event) =>
  busy(event.currentTarget, async () => {
    try {
      const started = await withReauth(() => api("/api/v1/account/second-factors/totp", { method: "POST" }), reauthOptions());
      if (!started) return;
      const setup = $("#totp-setup");
      setup.dataset.id = started.id;
      $("#totp-qr").src = started.qr;
      $("#totp-secret").textContent = started.secret.replace(/(.{4})/g, "$1 ").trim();
      $("#totp-open").href = started.uri;
      setup.hidden = false;
      showAlert(alertBox, "");
      $("#totp-code").focus();
    } catch (error) {
      showAlert(alertBox, errorMessage(error));
    }
  }),
);

$("#totp-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const code = $("#totp-code").value.trim();
  if (!code) return showAlert(alertBox, t("Please enter the code."));
  await busy(event.submitter || $("#totp-form button"), async () => {
    try {
      const id = $("#totp-setup").dataset.id;
      const label = $("#totp-label").value.trim() || t("Authenticator app");
      const done = await api(`/api/v1/account/second-factors/totp/${id}/confirm`, { method: "POST", body: { code, label } });
      $("#totp-setup").hidden = true;
      $("#totp-code").value = "";
      await finished(done);
    } catch (error) {
      showAlert(alertBox, errorMessage(error));
      $("#totp-code").select();
    }
  });
});

const passkeyButton = $("#add-passkey");
passkeyButton.hidden = !passkeysSupported();
passkeyButton.addEventListener("click", () =>
  busy(passkeyButton, async () => {
    try {
      const credential = await withReauth(createPasskey, reauthOptions());
      if (!credential) return;
      const label = window.prompt(t("Name for this passkey (e.g. “Laptop” or “Security key”)"), t("Passkey")) || t("Passkey");
      const done = await api("/api/v1/account/second-factors/webauthn", { method: "POST", body: { credential, label: label.slice(0, 100) } });
      await finished(done);
    } catch (error) {
      showAlert(alertBox, error.name === "NotAllowedError" ? t("The passkey was not created.") : errorMessage(error));
    }
  }),
);

async function finished(done) {
  if (done.signed_in) {
    // The sign-in is complete: the session was replaced, with a new CSRF token.
    const me = await api("/api/v1/auth/me");
    setCsrfToken(me.csrf_token);
  }
  showAlert(alertBox, t("Your second factor is set up."), "success");
  if (done.recovery_codes) showCodes(done.recovery_codes);
  else if (done.signed_in) window.location.assign(nextPage());
  await loadFactors();
}

function showCodes(codes) {
  $("#recovery-codes").replaceChildren(...codes.map((code) => h("li", {}, h("code", {}, code))));
  const box = $("#recovery");
  box.hidden = false;
  $("#continue").href = nextPage();
  $("#continue").hidden = !enrolling;
  box.querySelector("h2").focus();
}

function nextPage() {
  const next = root.dataset.next;
  return next && next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

$("#print-codes").addEventListener("click", () => window.print());

$("#new-codes").addEventListener("click", (event) =>
  busy(event.currentTarget, async () => {
    if (!window.confirm(t("Make new recovery codes? The old ones stop working."))) return;
    try {
      const done = await withReauth(() => api("/api/v1/account/recovery-codes", { method: "POST" }), reauthOptions());
      if (done) showCodes(done.recovery_codes);
      await loadFactors();
    } catch (error) {
      showAlert(alertBox, errorMessage(error));
    }
  }),
);

// --- sessions -------------------------------------------------------------------------------

function browserName(agent) {
  const browser = /Edg\//.test(agent) ? "Edge" : /Firefox\//.test(agent) ? "Firefox"
    : /Chrom(e|ium)\//.test(agent) ? "Chrome" : /Safari\//.test(agent) ? "Safari" : t("Browser");
  const system = /Android/.test(agent) ? "Android" : /iPhone|iPad/.test(agent) ? "iOS"
    : /Windows/.test(agent) ? "Windows" : /Mac OS X/.test(agent) ? "macOS" : /Linux/.test(agent) ? "Linux" : "";
  return system ? t("{browser} on {system}", { browser, system }) : browser;
}

async function loadSessions() {
  const list = $("#session-list");
  if (!list) return;
  const sessions = await api("/api/v1/auth/sessions");
  list.replaceChildren(
    ...sessions.map((s) =>
      h("li", { class: "row spread" },
        h("div", {},
          h("strong", {}, browserName(s.user_agent)), s.ip ? " · " : "", s.ip || "",
          h("div", { class: "muted" },
            t("Signed in {date}", { date: formatDateTime(s.created_at) }), " · ",
            t("last active {date}", { date: formatDateTime(s.last_seen_at) }))),
        s.current
          ? h("span", { class: "badge" }, t("This browser"))
          : h("button", { type: "button", onclick: (e) => endSession(e.currentTarget, s.key) }, t("Sign out there")),
      ),
    ),
  );
}

async function endSession(button, key) {
  await busy(button, async () => {
    try {
      await api(`/api/v1/auth/sessions/${encodeURIComponent(key)}`, { method: "DELETE" });
      await loadSessions();
    } catch (error) {
      showAlert($("#sessions-alert"), errorMessage(error));
    }
  });
}

loadFactors().catch((error) => showAlert(alertBox, errorMessage(error)));
loadSessions().catch((error) => showAlert($("#sessions-alert"), errorMessage(error)));
