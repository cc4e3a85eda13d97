// GP: how many specialists of the chosen specialty are on duty now and how many are in a
// consultation, live over the dashboard websocket (docs/protocol.md "presence"); read once with
// GET /api/v1/specialties/presence on load. Counts only: the server never says who.
import { api } from "./api.js";
import { h } from "./dom.js";
import { t } from "./i18n.js";
import { Signaling } from "./signaling.js";
import { ConnectionNotice } from "./connection-notice.js";

/** The line for one specialty's counts, e.g. "2 specialists on duty · 1 in a consultation". */
export function presenceText(counts) {
  if (!counts || (!counts.on_duty && !counts.in_call)) return t("Nobody on duty right now");
  const parts = [t("{count, plural, one {# specialist on duty} other {# specialists on duty}}", { count: counts.on_duty })];
  if (counts.in_call) parts.push(t("{count} in a consultation", { count: counts.in_call }));
  return parts.join(" · ");
}

/** Shows in `line` the counts of the specialty `chosen()` returns (its slug), live; call the
 * returned `show()` when the choice changes. `onCounts(counts)` hears the chosen specialty's
 * counts (null while unknown: not read yet, or the session ended) after each change. */
export function watchPresence(line, chosen, onCounts = () => {}) {
  let bySlug = new Map();
  let live = null;

  function show() {
    const counts = bySlug.get(chosen());
    const text = presenceText(counts);
    line.hidden = !bySlug.size || Boolean(live?.stopped);
    line.dataset.onDuty = String(counts ? counts.on_duty : 0);
    line.dataset.inCall = String(counts ? counts.in_call : 0);
    onCounts(line.hidden ? null : counts || { on_duty: 0, in_call: 0 });
    // Only a changed sentence is written: the live region announces each write.
    if (line.dataset.text === text) return;
    line.dataset.text = text;
    line.replaceChildren(h("span", { class: "presence-dot", "aria-hidden": "true" }), text);
  }

  function take(list) {
    bySlug = new Map(list.map((s) => [s.slug, s]));
    show();
  }

  api("/api/v1/specialties/presence").then(take, () => {});
  // The counts stand still while the websocket is being restored: the notice at the top says so.
  const notice = new ConnectionNotice(document.querySelector("[data-connection-notice]"), {
    texts: () => ({
      hint: t("Who is on duty may not be up to date until then."),
      longHint: t("Please check your internet connection. Who is on duty may not be up to date."),
    }),
  });
  live = new Signaling({
    as: "staff",
    onMessage: (message) => {
      if (message.type === "presence") take(message.specialties);
    },
    // Back on a new websocket, the server sends the counts at once (docs/protocol.md).
    onStatus: (status) => notice.update(status),
    // The session ended (logged out elsewhere, timed out): no stale counts.
    onFatal: () => { line.hidden = true; onCounts(null); notice.update("ended"); },
  });
  live.connect();
  return { show };
}
