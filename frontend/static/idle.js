// Staff pages: the session ends after a while without activity (KONSIL_SESSION_IDLE_MINUTES).
// The server keeps the clock: requests, websocket messages and being in a call count, in any
// tab. This page counts the user's own typing and clicking too (a report written for half an
// hour keeps the session), asks the server how much time is left before it warns (asking does
// not count as activity), and two minutes before the end offers to stay signed in.
import { api, ApiError } from "./api.js";
import { h } from "./dom.js";
import { t } from "./i18n.js";

const minutes = Number(document.documentElement.dataset.idleMinutes || 0);
const WARN_MS = 2 * 60 * 1000;
const PING_MS = 60 * 1000;

if (minutes > 0) {
  let lastServer = Date.now(); // this page's last request (the server may know of later ones)
  let lastInput = 0;
  let asking = false;
  let warning = null;

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

  async function askServer() {
    asking = true;
    try {
      // A direct fetch: it must not count as this page's activity.
      const response = await fetch("/api/v1/auth/session", { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.status === 401) {
        const next = window.location.pathname + window.location.search;
        window.location.assign(`/login?reason=idle&next=${encodeURIComponent(next)}`);
        return;
      }
      if (!response.ok) return;
      const left = (await response.json()).idle_seconds_left * 1000;
      lastServer = Date.now() - (minutes * 60000 - left);
      if (left <= WARN_MS) showWarning(left);
      else hideWarning();
    } catch (error) {
      if (!(error instanceof ApiError)) return; // offline: ask again at the next tick
    } finally {
      asking = false;
    }
  }

  setInterval(() => {
    const now = Date.now();
    if (lastInput > lastServer && now - lastServer >= PING_MS) {
      ping();
      return;
    }
    if (!asking && lastServer + minutes * 60000 - now <= WARN_MS) askServer();
  }, 5000);
}
