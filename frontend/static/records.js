// A consultation's records in page scripts: the documents the GP uploaded and the specialist's
// report for the GP. Shared by the specialist's appointment page and the call page, so that
// the report is written the same way in both (PUT /api/v1/appointments/{id}/report), and by
// the GP's booking page (the report as a letter).
import { api, errorMessage } from "./api.js";
import { h, showAlert, busy } from "./dom.js";
import { t, formatDateTime } from "./i18n.js";

/**
 * Lists the documents of `appointmentId` in `list`. The links download the file (the
 * `download` attribute): the page stays, so a call on it goes on.
 */
export async function listDocuments(list, appointmentId) {
  const docs = await api(`/api/v1/appointments/${appointmentId}/documents`);
  list.replaceChildren(...(docs.length ? docs.map((d) => h("li", {},
    h("a", { href: `/api/v1/appointments/${appointmentId}/documents/${d.id}`, download: d.filename }, d.filename),
    d.size ? h("span", { class: "muted" }, ` (${Math.max(1, Math.ceil(d.size / 1024))} KB)`) : null))
    : [h("li", { class: "muted" }, t("No documents."))]));
  return docs;
}

const letterUrl = (appointmentId) => `/api/v1/appointments/${appointmentId}/report.pdf`;

/**
 * The report as a doctor's letter (Arztbrief, PDF): a download (`Content-Disposition:
 * attachment`), so the page stays, and a call on it goes on.
 */
export function letterLink(appointmentId) {
  return h("a", { class: "button", href: letterUrl(appointmentId), download: true, dataset: { reportPdf: "" } },
    t("Download the doctor's letter as PDF"));
}

/**
 * The report form: `form` has a textarea `body` and a submit button; `saved` says when it
 * was saved, `errorBox` what went wrong; its letter link (`[data-report-pdf]`) is shown once
 * a report is saved. With `existing`, the saved report is loaded first.
 */
export async function mountReport(form, { appointmentId, saved, errorBox, existing = false }) {
  // Mounted again when the page reloads its appointment: one handler, or it saves twice.
  if (!form.dataset.wired) form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = form.body.value.trim();
    if (!body) {
      showAlert(errorBox, t("Please write the report first."));
      return;
    }
    await busy(form.querySelector("button[type=submit]"), async () => {
      try {
        const report = await api(`/api/v1/appointments/${appointmentId}/report`, { method: "PUT", body: { body } });
        showAlert(errorBox, "");
        saved.textContent = t("Saved {time}. The GP can read it now.", { time: formatDateTime(report.updated_at) });
        form.dataset.saved = report.updated_at;
        showLetter(form, appointmentId);
      } catch (error) {
        showAlert(errorBox, errorMessage(error));
      }
    });
  });
  form.dataset.wired = "true";
  if (!existing) return;
  const report = await api(`/api/v1/appointments/${appointmentId}/report`);
  form.body.value = report.body;
  saved.textContent = t("Last saved {time}.", { time: formatDateTime(report.updated_at) });
  showLetter(form, appointmentId);
}

function showLetter(form, appointmentId) {
  const link = form.querySelector("[data-report-pdf]");
  if (!link) return;
  link.href = letterUrl(appointmentId);
  link.hidden = false;
}
