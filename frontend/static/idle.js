// Staff pages: the session ends after a while without activity (KONSIL_SESSION_IDLE_MINUTES).
// The user's own typing and clicking count (a report written for half an hour keeps the
// session), being in a call counts, and two minutes before the end the page warns and offers
// to stay signed in.
import { api } from "./api.js";
import { h } from "./dom.js";
import { t } from "./i18n.js";

const minutes = Number(document.documentElement.dataset.idleMinutes || 0);
const WARN_MS = 2 * 60 * 1000;
const PING_MS = 60 * 1000;

if (minutes > 0) {
  let lastServer = Date.now();
  let lastInput = 0;
  let warning = null;
  let leaving = false;

  window.addEventListener("konsil:activity", () => {
    lastServer = Date.now();
    hideWarning();
  });
  for (const type of ["keydown", "pointerdown", "wheel", "touchstart"]) {
    window.addEventListener(type, () => { lastInput = Date.now(); }, { passive: true, capture: true });
  }

  const ping = () => api("/api/v1/auth/me").catch(() => {});

  function showWarning(left) {
    const text = t("You will be signed out in {minutes} minutes because nothing happened.", {
      minutes: Math.max(1, Math.ceil(left / 60000)),
    });
    if (!warning) {
      const stay = h("button", { type: "button", class: "primary", onclick: ping }, t("Stay signed in"));
      warning = h("div", { class: "idle-warning alert warning", role: "alertdialog", "aria-live": "assertive" },
        h("p", { class: "idle-text" }), stay);
      document.body.append(warning);
      stay.focus();
    }
    warning.querySelector(".idle-text").textContent = text;
  }

  function hideWarning() {
    if (warning) {
      warning.remove();
      warning = null;
    }
  }

  setInterval(() => {
    const now = Date.now();
    const inCall = document.body.dataset.inCall === "true";
    if ((inCall || lastInput > lastServer) && now - lastServer >= PING_MS) {
      ping();
      return;
    }
    const left = lastServer + minutes * 60000 - now;
    if (left <= 0 && !leaving) {
      leaving = true;
      // End the session here too (the server ends it on its own clock anyway).
      const next = window.location.pathname + window.location.search;
      api("/api/v1/auth/logout", { method: "POST" })
        .catch(() => {})
        .finally(() => window.location.assign(`/login?reason=idle&next=${encodeURIComponent(next)}`));
    } else if (left <= WARN_MS) {
      showWarning(left);
    }
  }, 5000);
}
