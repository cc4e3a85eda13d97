// GP: one booking: details, join the call, new patient link, reschedule, cancel, documents,
// and the specialist's report; an on-call request's state above them (gp-on-call-status.js).
import { api, errorMessage } from "./api.js";
import { $, h, showAlert, busy } from "./dom.js";
import { t, formatDate, formatDateTime } from "./i18n.js";
import { cancelledRow, particularsRows, statusLine } from "./labels.js";
import { mountConversation } from "./conversation.js";
import { showSlots, weekStart } from "./slots.js";
import { showLink } from "./linkbox.js";
import { mountDocuments } from "./documents.js";
import { letterLink } from "./records.js";
import { mountGuestInvite } from "./guest-invite.js";
import { specialistText, takeLink } from "./gp-on-call.js";
import { mountOnCallStatus } from "./gp-on-call-status.js";

const root = $("#gp-appointment");
const id = Number(root.dataset.appointment);
const errorBox = $("[data-error]", root);
const notice = $("[data-notice]", root);
let appointment = null;
let week = 0;
// An on-call request's link, handed over by the booking page: shown once, on the first load.
let issuedLink = takeLink(id);

async function load() {
  try {
    appointment = await api(`/api/v1/appointments/${id}`);
  } catch (error) {
    showAlert(errorBox, errorMessage(error));
    return;
  }
  $("[data-content]", root).hidden = false;
  renderDetails();
  onCall.show(appointment);
  if (issuedLink) {
    $("[data-link-area]", root).hidden = false;
    showLink($("[data-link-box]", root), issuedLink, appointment);
    issuedLink = null;
  }
  if (appointment.question_open_since) {
    showAlert(notice, t("The specialist has asked you something: please answer below."), "warning");
  }
  await Promise.all([
    loadReport(), mountDocuments($("[data-documents-box]", root), id), loadMessages(),
    mountConversation($("[data-conversation]", root), id, { role: "gp", open: appointment.status !== "cancelled" }),
  ]);
}

// The on-call request's own reads and changes reach the details too.
const onCall = mountOnCallStatus($("[data-on-call]", root), {
  appointmentId: id,
  heading: $("[data-title]", root),
  notice,
  errorBox,
  onRead: (fresh) => {
    appointment = fresh;
    renderDetails();
  },
  reload: () => load(),
});

const MESSAGE_KIND = {
  invitation: () => t("Invitation with the link"),
  rescheduled: () => t("New time and new link"),
  new_link: () => t("New link"),
  cancelled: () => t("Cancellation"),
  report_ready: () => t("Report ready (to you)"),
  delay: () => t("Late notice from the specialist"),
  on_call_unclaimed: () => t("Request not taken yet (to you)"),
  question_asked: () => t("Question from the specialist (to you)"),
  declined: () => t("Declined by the specialist (to you)"),
};
const CHANNEL = {
  email: () => t("email"),
  sms: () => t("SMS"),
};
const MESSAGE_ERROR = {
  recipient_refused: () => t("the address was refused"),
  sender_refused: () => t("the mail server refused our sender"),
  refused: () => t("the mail server refused the message"),
  auth_failed: () => t("the mail server refused our login"),
  tls: () => t("no secure connection to the mail server"),
  timeout: () => t("the mail server did not answer"),
  connection: () => t("the mail server could not be reached"),
  no_address: () => t("no email address or mobile number"),
  not_configured: () => t("not set up on this server"),
  sms_refused: () => t("the SMS gateway refused it"),
  sms_gateway_error: () => t("the SMS gateway had an error"),
  already_joined: () => t("the patient was already in the waiting room"),
  too_late: () => t("its time had passed"),
  link_unavailable: () => t("the link can no longer be sent; issue a new one"),
  link_replaced: () => t("a newer link replaced it"),
  link_expired: () => t("the link had expired"),
  cancelled: () => t("the booking was cancelled"),
  patient_arrived: () => t("the patient was already in the waiting room"),
  delay_withdrawn: () => t("the specialist withdrew the late notice"),
  claimed: () => t("a specialist took the request"),
  request_closed: () => t("the request is no longer open"),
  asked_again: () => t("you asked again"),
  answered: () => t("you had already answered"),
};

function messageState(m) {
  const why = m.error ? (MESSAGE_ERROR[m.error] || (() => m.error))() : "";
  const reply = m.smtp_code || m.http_status;
  const code = reply ? ` (${reply})` : "";
  switch (m.status) {
    case "sent": return t("sent {time}", { time: formatDateTime(m.sent_at) });
    case "failed": return t("failed {time}: {reason}", { time: formatDateTime(m.failed_at), reason: why + code });
    case "superseded": return t("not sent: {reason}", { reason: why });
    case "queued": return m.attempts
      ? t("not yet sent ({reason}); next attempt {time}", { reason: why + code, time: formatDateTime(m.next_attempt_at) })
      : m.kind === "reminder"
        ? t("planned for {time}", { time: formatDateTime(m.next_attempt_at) })
        : t("waiting to be sent");
    default: return t("being sent");
  }
}

async function loadMessages() {
  const card = $("[data-messages-card]", root);
  const list = $("[data-messages]", root);
  const note = $("[data-messages-note]", root);
  let found;
  try {
    found = await api(`/api/v1/appointments/${id}/messages`);
  } catch (error) {
    card.hidden = false;
    list.replaceChildren(h("li", { class: "alert error" }, errorMessage(error)));
    return;
  }
  card.hidden = false;
  note.textContent = messagesNote(found);
  list.replaceChildren(...(found.messages.length ? found.messages.map(messageItem) : [h("li", { class: "muted" }, t("No messages yet."))]));
}

// Where messages to the patient go, and what this server cannot send.
function messagesNote(found) {
  if (appointment && appointment.kind === "written") {
    // Only the GP is told anything (a report, a question back), by e-mail.
    const notes = [t("A written Telekonsil sends the patient nothing.")];
    if (!found.email_configured) notes.push(t("Sending email is not set up on this server."));
    return notes.join(" ");
  }
  if (!found.email_configured && !found.sms_configured) {
    return t("Sending email and SMS is not set up on this server: Konsil sends no messages. Give the patient the link yourself.");
  }
  const notes = [];
  if (found.patient_email) notes.push(t("Messages to the patient go to {address}.", { address: found.patient_email }));
  if (found.patient_phone) notes.push(t("SMS to the patient go to {number}.", { number: found.patient_phone }));
  if (!notes.length) notes.push(t("The patient gets no messages from Konsil (not chosen at booking)."));
  if (!found.email_configured) notes.push(t("Sending email is not set up on this server."));
  if (!found.sms_configured) notes.push(t("Sending SMS is not set up on this server."));
  return notes.join(" ");
}

function messageKind(m) {
  if (m.kind !== "reminder") return (MESSAGE_KIND[m.kind] || (() => m.kind))();
  const minutes = m.reminder_minutes || 0;
  const before = minutes % 60 === 0 ? `${minutes / 60} h` : `${minutes} min`;
  return t("Reminder {time} before", { time: before });
}

function messageItem(m) {
  const to = m.recipient === "gp" ? t("to you") : t("to the patient");
  const channel = (CHANNEL[m.channel] || (() => m.channel))();
  const item = h("li", { dataset: { message: String(m.id), status: m.status, channel: m.channel } },
    h("strong", {}, messageKind(m)), ` ${to}, ${channel}: `,
    h("span", {}, messageState(m)));
  if (m.status === "failed" || m.status === "sent") {
    const again = h("button", { type: "button" }, t("Send again"));
    again.addEventListener("click", (event) => resend(event, m));
    item.append(" ", again);
  }
  return item;
}

async function resend(event, m) {
  await busy(event.target, async () => {
    try {
      await api(`/api/v1/appointments/${id}/messages/${m.id}/resend`, { method: "POST" });
      showAlert(notice, t("The message is being sent again."), "success");
      await loadMessages();
    } catch (error) {
      showAlert(errorBox, errorMessage(error));
    }
  });
}

function renderDetails() {
  const a = appointment;
  // Not inside the t() call below: the message extraction reads no t() nested in another's arguments.
  const opened = a.link && a.link.last_redeemed_at ? formatDateTime(a.link.last_redeemed_at) : t("never");
  const onCall = a.kind === "on_call";
  // A written Telekonsil (no video): no time, no link, no call, no guest; the patient is not
  // contacted.
  const written = a.kind === "written";
  const rows = [
    [written ? t("Sent") : onCall ? t("Asked") : t("Time"), formatDateTime(a.starts_at)],
    [t("Specialist"), specialistText(a)],
    [t("Status"), statusLine(a)],
    [t("Patient"), a.patient_name],
    [t("Date of birth"), formatDate(`${a.patient_birth_date}T12:00:00Z`)],
    ...(written ? [] : [[t("Contact"), a.patient_contact]]),
    ...(a.patient_phone ? [[t("Mobile number (SMS)"), a.patient_phone]] : []),
    [t("Urgency"), a.urgency === "urgent" ? t("Urgent") : t("Routine")],
    [t("Clinical question"), a.clinical_question],
    ...particularsRows(a),
    ...cancelledRow(a),
    ...(written ? [] : [[t("Patient link"), a.link ? t("valid {from} – {until}, last opened: {opened}", {
      from: formatDateTime(a.link.valid_from), until: formatDateTime(a.link.valid_until),
      opened,
    }) : t("none")]]),
  ];
  $("[data-details]", root).replaceChildren(...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", { class: "report" }, v)]));
  const active = a.status === "booked";
  for (const sel of ["[data-join]", "[data-new-link]", "[data-reschedule]", "[data-cancel]"]) $(sel, root).hidden = !active;
  $("[data-actions] [data-staff-ics]", root).hidden = written;
  if (written) {
    $("[data-title]", root).textContent = t("Written Telekonsil · {specialty}", { specialty: a.specialty });
    for (const sel of ["[data-join]", "[data-new-link]", "[data-reschedule]"]) $(sel, root).hidden = true;
    $("[data-cancel]", root).textContent = t("Withdraw the request");
  }
  if (onCall && a.specialist_id === null) {
    // Nobody has taken it: no slot to move, and withdrawing is the request's own action.
    $("[data-reschedule]", root).hidden = true;
    $("[data-cancel]", root).hidden = true;
  }
  // A guest (interpreter, carer) can be invited while the consultation can still take place.
  const guestArea = $("[data-guest-area]", root);
  guestArea.hidden = written || !active || ["ended", "no_show", "cancelled"].includes(a.room_state);
  if (!guestArea.hidden && !guestArea.dataset.mounted) {
    guestArea.dataset.mounted = "true";
    mountGuestInvite($("[data-guest-invite]", guestArea), id);
  }
  $("[data-actions] [data-staff-ics]", root).href = `/api/v1/appointments/${id}/calendar.ics`;
}

async function loadReport() {
  const box = $("[data-report]", root);
  if (!appointment.has_report) {
    box.replaceChildren(h("p", { class: "muted" }, t("No report yet.")));
    return;
  }
  try {
    const report = await api(`/api/v1/appointments/${id}/report`);
    box.replaceChildren(
      h("p", { class: "muted" }, t("{author}, {time}", { author: report.author_name, time: formatDateTime(report.updated_at) })),
      h("div", { class: "report", dataset: { reportBody: "" } }, report.body),
      h("p", { class: "row" }, letterLink(id)));
  } catch (error) {
    box.replaceChildren(h("p", { class: "alert error" }, errorMessage(error)));
  }
}

async function cancel(event) {
  const written = appointment.kind === "written";
  const question = written
    ? t("Withdraw this written request? The specialist can no longer answer it.")
    : t("Cancel this booking? The patient's link stops working.");
  if (!window.confirm(question)) return;
  await busy(event.target, async () => {
    try {
      appointment = await api(`/api/v1/appointments/${id}/cancel`, { method: "POST" });
      showAlert(notice, written ? t("The request was withdrawn.") : t("The booking was cancelled."), "success");
      await load();
    } catch (error) {
      showAlert(errorBox, errorMessage(error));
    }
  });
}

async function newLink(event) {
  await busy(event.target, async () => {
    try {
      const link = await api(`/api/v1/appointments/${id}/link`, { method: "POST" });
      $("[data-link-area]", root).hidden = false;
      showLink($("[data-link-box]", root), link, appointment);
      showAlert(notice, t("A new link was issued; the old one no longer works."), "success");
      await load();
    } catch (error) {
      showAlert(errorBox, errorMessage(error));
    }
  });
}

function openReschedule() {
  $("[data-reschedule-box]", root).hidden = false;
  loadSlots();
  $("#reschedule-title").scrollIntoView();
}

function loadSlots() {
  $("[data-week-prev]", root).disabled = week === 0;
  showSlots($("[data-slots]", root), { specialist: appointment.specialist_id }, weekStart(week), reschedule);
}

async function reschedule(slot) {
  const when = formatDateTime(slot.starts_at);
  if (!window.confirm(t("Move the booking to {time}?", { time: when }))) return;
  try {
    const result = await api(`/api/v1/appointments/${id}/reschedule`, { method: "POST", body: { starts_at: slot.starts_at } });
    $("[data-reschedule-box]", root).hidden = true;
    appointment = result.appointment;
    $("[data-link-area]", root).hidden = false;
    showLink($("[data-link-box]", root), result.link, result.appointment);
    showAlert(notice, t("The booking was moved to {time}. Please give the patient the new link; the old one no longer works.", { time: when }), "success");
    await load();
  } catch (error) {
    showAlert(errorBox, errorMessage(error));
    loadSlots();
  }
}

$("[data-cancel]", root).addEventListener("click", cancel);
$("[data-new-link]", root).addEventListener("click", newLink);
$("[data-reschedule]", root).addEventListener("click", openReschedule);
$("[data-week-prev]", root).addEventListener("click", () => { week = Math.max(0, week - 1); loadSlots(); });
$("[data-week-next]", root).addEventListener("click", () => { week += 1; loadSlots(); });
load();
