// The appointment's guest (interpreter, carer) for its specialist and booking GP: invite with
// a single-use link (shown once, like the patient's link), see whether it was opened and
// whether the guest is in, revoke. Markup: frontend/templates/_guest_invite.html;
// API: docs/api.md "Guests".
import { api, errorMessage } from "./api.js";
import { $, busy, showAlert } from "./dom.js";
import { t } from "./i18n.js";
import { guestKindLabel } from "./call-tiles.js";

/** "Ayşe Demir (Dolmetscher/in)" */
export function guestName(guest) {
  return t("{name} ({kind})", { name: guest.name, kind: guestKindLabel(guest.kind) });
}

function currentText(guest) {
  const who = guestName(guest);
  if (guest.admitted) return t("{guest} has been let in.", { guest: who });
  if (guest.redeemed) return t("{guest} has opened the link.", { guest: who });
  return t("{guest} is invited; the link has not been opened yet.", { guest: who });
}

/**
 * Mounts the guest box. Returns `refresh()`, which reads the invitation again (the call page
 * calls it when the websocket says the guest came, was let in or went).
 */
export function mountGuestInvite(box, appointmentId) {
  const url = `/api/v1/appointments/${appointmentId}/guest`;
  const errorBox = $("[data-guest-error]", box);
  const current = $("[data-guest-current]", box);
  const revoke = $("[data-guest-revoke]", box);
  const form = $("[data-guest-form]", box);
  const linkBox = $("[data-guest-link]", box);

  const show = (guest) => {
    current.hidden = !guest;
    current.textContent = guest ? currentText(guest) : "";
    revoke.hidden = !guest;
    $("[data-guest-replaces]", box).hidden = !guest;
    // The link works on one device only: once opened, it is of no use to anybody else.
    if (!guest || guest.redeemed) linkBox.hidden = true;
  };
  const refresh = async () => {
    try {
      show(await api(url));
    } catch (error) {
      showAlert(errorBox, errorMessage(error));
    }
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = form.name.value.trim();
    if (name.length < 2) {
      showAlert(errorBox, t("Please enter the guest's name."));
      form.name.setAttribute("aria-invalid", "true");
      form.name.focus();
      return;
    }
    form.name.removeAttribute("aria-invalid");
    busy(form.querySelector("button[type=submit]"), async () => {
      showAlert(errorBox, "");
      try {
        const issued = await api(url, { method: "POST", body: { name, kind: form.kind.value } });
        show(issued);
        showLink(box, issued.guest_url);
        form.reset();
      } catch (error) {
        showAlert(errorBox, errorMessage(error));
      }
    });
  });
  revoke.addEventListener("click", () => busy(revoke, async () => {
    try {
      await api(url, { method: "DELETE" });
      show(null);
      current.hidden = false;
      current.textContent = t("The guest link was revoked.");
    } catch (error) {
      showAlert(errorBox, errorMessage(error));
    }
  }));
  refresh();
  return refresh;
}

function showLink(box, link) {
  const linkBox = $("[data-guest-link]", box);
  const input = $("[data-guest-url]", box);
  const status = $("[data-guest-copy-status]", box);
  input.value = link;
  status.textContent = "";
  linkBox.hidden = false;
  $("[data-guest-copy]", box).onclick = async () => {
    try {
      await navigator.clipboard.writeText(link);
    } catch {
      input.select();
      document.execCommand("copy");
    }
    status.textContent = t("Link copied.");
  };
  input.focus();
  input.select();
}
