// Questions back and answers between the booking GP and the specialist of one consultation
// (GET/POST /api/v1/appointments/{id}/conversation): the thread, and a form to write.
import { api, errorMessage } from "./api.js";
import { $, h, showAlert, busy } from "./dom.js";
import { t, formatDateTime } from "./i18n.js";

/**
 * Mounts the thread in `box` (_conversation.html). `role`: "gp" or "specialist", the reader;
 * `open`: whether messages can still be written (not after a cancellation).
 */
export async function mountConversation(box, appointmentId, { role, open }) {
  const path = `/api/v1/appointments/${appointmentId}/conversation`;
  const thread = $("[data-conversation-thread]", box);
  const form = $("[data-conversation-form]", box);
  const errorBox = $("[data-conversation-error]", box);
  $("[data-conversation-hint]", box).textContent = role === "specialist"
    ? t("Ask the practice for what you need (a finding, the medication plan). The practice sees the question on its booking.")
    : t("The specialist's questions about this request, and your answers.");
  $("[data-conversation-label]", box).textContent = role === "specialist" ? t("Your question to the practice") : t("Your answer");
  form.hidden = !open;

  async function load() {
    let messages;
    try {
      messages = await api(path);
    } catch (error) {
      showAlert(errorBox, errorMessage(error));
      return;
    }
    thread.replaceChildren(...(messages.length ? messages.map((m) => h("li", {
      class: `message ${m.author_role === role ? "mine" : "theirs"}`, dataset: { role: m.author_role },
    },
    h("p", { class: "muted" }, t("{author}, {time}", { author: m.author_name, time: formatDateTime(m.created_at) })),
    h("p", { class: "report" }, m.body))) : [h("li", { class: "muted" }, t("No messages yet."))]));
  }

  if (!form.dataset.wired) {
    form.dataset.wired = "true";
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const text = form.body.value.trim();
      if (!text) {
        showAlert(errorBox, t("Please write a message."));
        form.body.focus();
        return;
      }
      await busy(form.querySelector("button[type=submit]"), async () => {
        try {
          await api(path, { method: "POST", body: { body: text } });
          form.reset();
          showAlert(errorBox, "");
          await load();
        } catch (error) {
          showAlert(errorBox, errorMessage(error));
        }
      });
    });
  }
  await load();
}
