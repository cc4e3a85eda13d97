// Specialist: the presence toggle on the queue page (PUT/GET /api/v1/presence). "In a
// consultation" is never set here: the server derives it from the rooms, so the page reads
// the presence again whenever the queue changes.
import { api } from "./api.js";
import { $ } from "./dom.js";
import { t } from "./i18n.js";

const NOW = {
  on_duty: () => t("On duty: GPs see you as available."),
  in_call: () => t("In a consultation: GPs see you as busy."),
  away: () => t("Away: GPs do not count you."),
};

/** Mounts the toggle in `card`; returns { refresh } to read the presence again. */
export function mountPresence(card, onError) {
  const radios = Array.from(card.querySelectorAll("input[name=presence]"));
  const now = $("[data-presence-now]", card);
  let asked = 0; // answers may come out of order: only the last request's counts

  function show(presence) {
    const chosen = presence.on_duty ? "on_duty" : "away";
    for (const radio of radios) radio.checked = radio.value === chosen;
    card.dataset.presence = presence.status;
    now.textContent = NOW[presence.status]();
  }

  async function refresh() {
    const request = ++asked;
    try {
      const presence = await api("/api/v1/presence");
      if (request === asked) show(presence);
    } catch (error) {
      onError(error);
    }
  }

  for (const radio of radios) {
    radio.addEventListener("change", async () => {
      if (!radio.checked) return;
      const request = ++asked;
      for (const r of radios) r.disabled = true;
      try {
        const presence = await api("/api/v1/presence", { method: "PUT", body: { status: radio.value } });
        if (request === asked) show(presence);
      } catch (error) {
        onError(error);
        await refresh();
      } finally {
        for (const r of radios) r.disabled = false;
      }
    });
  }
  return { refresh };
}

