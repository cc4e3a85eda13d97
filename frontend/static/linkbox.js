// The patient's link after booking or re-issuing: copy, send by email, calendar files.
import { api, errorMessage } from "./api.js";
import { $, busy } from "./dom.js";
import { t, formatDateTime } from "./i18n.js";

let patientIcsUrl = null;
let invitationUrl = null;

/** Fills the link box (frontend/templates/gp/_link.html) from a LinkOut and its appointment. */
export function showLink(box, link, appointment) {
  const input = $("[data-join-url]", box);
  input.value = link.join_url;
  // An on-call request (a consult now) names its specialty, and its link works at once.
  const onCall = appointment.kind === "on_call";
  $("[data-booked-summary]", box).textContent = onCall
    ? t("On-call consult · {specialty}, requested {time}, patient {patient}.", {
      specialty: appointment.specialty, time: formatDateTime(appointment.starts_at), patient: appointment.patient_name,
    })
    : t("{specialist} on {time}, patient {patient}.", {
      specialist: appointment.specialist_name, time: formatDateTime(appointment.starts_at), patient: appointment.patient_name,
    });
  if (onCall) {
    $("[data-link-intro]", box).textContent = t("Give the patient this personal link. It works now: the patient can wait in the waiting room until a specialist takes the request. For privacy it is shown only now; you can issue a new one on the request's page.");
  }
  $("[data-link-validity]", box).textContent = t("The link is valid from {from} to {until}.", {
    from: formatDateTime(link.valid_from), until: formatDateTime(link.valid_until),
  });
  const status = $("[data-copy-status]", box);
  $("[data-copy]", box).onclick = async () => {
    try {
      await navigator.clipboard.writeText(link.join_url);
    } catch {
      input.select();
      document.execCommand("copy");
    }
    status.textContent = t("Link copied.");
  };
  const subject = onCall
    ? t("Your video consultation now")
    : t("Your video consultation on {time}", { time: formatDateTime(appointment.starts_at) });
  const body = onCall
    ? t("Hello,\n\na specialist in {specialty} will see you in a video consultation shortly.\nPlease open this link on your smartphone or computer now:\n{url}\n\nPlease keep the link to yourself.", {
      specialty: appointment.specialty, url: link.join_url,
    })
    : t("Hello,\n\nyour video consultation with {specialist} is on {time}.\nOpen this link on your smartphone or computer up to 30 minutes before:\n{url}\n\nPlease keep the link to yourself.", {
      specialist: appointment.specialist_name, time: formatDateTime(appointment.starts_at), url: link.join_url,
    });
  const to = appointment.patient_contact.includes("@") ? appointment.patient_contact : "";
  // RFC 6068: the address as it is ("@" not percent-encoded, which some mail programs keep).
  $("[data-mail]", box).href = `mailto:${encodeURIComponent(to).replace(/%40/g, "@")}?subject=${encodeURIComponent(subject)}&body=${encodeURIComponent(body)}`;
  if (patientIcsUrl) URL.revokeObjectURL(patientIcsUrl);
  patientIcsUrl = URL.createObjectURL(new Blob([link.patient_ics], { type: "text/calendar;charset=utf-8" }));
  const ics = $("[data-patient-ics]", box);
  ics.href = patientIcsUrl;
  ics.download = `konsil-${appointment.id}-patient.ics`;
  $("[data-staff-ics]", box).href = `/api/v1/appointments/${appointment.id}/calendar.ics`;
  const printStatus = $("[data-print-status]", box);
  printStatus.textContent = "";
  const print = $("[data-print]", box);
  print.onclick = () => busy(print, async () => {
    // A tab opened now (during the click) is not taken for a pop-up; it shows the PDF once
    // the server has made it.
    const tab = window.open("", "_blank");
    try {
      const response = await api(`/api/v1/appointments/${appointment.id}/invitation.pdf`, {
        method: "POST", body: { join_url: link.join_url }, raw: true,
      });
      if (invitationUrl) URL.revokeObjectURL(invitationUrl);
      invitationUrl = URL.createObjectURL(await response.blob());
      if (tab) {
        tab.location.href = invitationUrl;
        printStatus.textContent = t("The invitation opens in a new tab; print it there.");
      } else {
        const a = document.createElement("a");
        a.href = invitationUrl;
        a.download = `einladung-${appointment.id}.pdf`;
        a.click();
        printStatus.textContent = t("The invitation was downloaded.");
      }
    } catch (error) {
      if (tab) tab.close();
      printStatus.textContent = errorMessage(error);
    }
  });
}
