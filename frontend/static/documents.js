// A booking's documents (frontend/templates/gp/_documents.html): the list and the upload form,
// on the booking page and right after booking.
import { api, errorMessage } from "./api.js";
import { $, h, showAlert, busy } from "./dom.js";
import { t, formatNumber } from "./i18n.js";

/** Shows the documents of ``appointmentId`` in ``box`` and lets the GP add more. */
export function mountDocuments(box, appointmentId) {
  const list = $("[data-documents]", box);
  const status = $("[data-documents-status]", box);
  const form = $("[data-upload-form]", box);

  async function refresh() {
    try {
      const docs = await api(`/api/v1/appointments/${appointmentId}/documents`);
      list.replaceChildren(...(docs.length ? docs.map((d) => h("li", {},
        h("a", { href: `/api/v1/appointments/${appointmentId}/documents/${d.id}`, download: d.filename }, d.filename),
        ` (${formatNumber(Math.ceil(d.size / 1024))} KB)`)) : [h("li", { class: "muted" }, t("No documents."))]));
    } catch (error) {
      list.replaceChildren(h("li", { class: "alert error" }, errorMessage(error)));
    }
  }

  form.onsubmit = async (event) => {
    event.preventDefault();
    const file = form.file.files[0];
    if (!file) {
      showAlert(status, t("Please choose a file first."));
      return;
    }
    const body = new FormData();
    body.append("file", file);
    await busy(form.querySelector("button"), async () => {
      try {
        await api(`/api/v1/appointments/${appointmentId}/documents`, { method: "POST", body });
        form.reset();
        showAlert(status, t("Document uploaded."), "success");
        await refresh();
      } catch (error) {
        showAlert(status, errorMessage(error));
      }
    });
  };
  return refresh();
}
