// GP: find a specialty or specialist, pick a free slot, book with patient data and question;
// or ask the whole specialty for a consult now (an on-call request), or in writing without
// video (a written Telekonsil), with the same form.
import { api, errorMessage, ApiError } from "./api.js";
import { $, h, showStep, showAlert, busy } from "./dom.js";
import { t, lang, formatDateTime } from "./i18n.js";
import { showSlots, weekStart, weekTitle } from "./slots.js";
import { showLink } from "./linkbox.js";
import { mountDocuments } from "./documents.js";
import { watchPresence } from "./gp-presence.js";
import { handOverLink } from "./gp-on-call.js";

const root = $("#gp-book");
const form = $("[data-search-form]", root);
const specialtySelect = form.specialty;
const specialistSelect = form.specialist;
const slotsBox = $("[data-slots]", root);
let week = 0;
let chosen = null; // the slot to book, or null for an on-call request
let asking = null; // the specialty asked (a consult now, or in writing), or null for a slot
let specialties = [];

async function init() {
  try {
    specialties = await api("/api/v1/specialties");
  } catch (error) {
    showAlert($("[data-search-error]", root), errorMessage(error));
    return;
  }
  specialtySelect.replaceChildren(...specialties.map((s) =>
    h("option", { value: s.slug }, lang === "de" ? s.name_de : s.name_en)));
  const params = new URLSearchParams(location.search);
  const wanted = params.get("specialty");
  if (wanted && specialties.some((s) => s.slug === wanted)) specialtySelect.value = wanted;
  const presence = watchPresence($("[data-presence-line]", root), () => specialtySelect.value, showOffer);
  specialtySelect.addEventListener("change", () => { week = 0; presence.show(); showOffer(); loadSpecialists(); });
  specialistSelect.addEventListener("change", () => { week = 0; loadSlots(); });
  $("[data-week-prev]", root).addEventListener("click", () => { week = Math.max(0, week - 1); loadSlots(); });
  $("[data-week-next]", root).addEventListener("click", () => { week += 1; loadSlots(); });
  $("[data-back]", root).addEventListener("click", () => { showStep(root, "search"); loadSlots(); });
  $("[data-booking-form]", root).addEventListener("submit", book);
  $("[data-on-call-start]", root).addEventListener("click", askNow);
  $("[data-written-start]", root).addEventListener("click", askInWriting);
  showOffer();
  const smsChoice = $("[data-sms-choice]", root);
  if (smsChoice) smsChoice.addEventListener("change", showPhoneField);
  if (/^\d+$/.test(params.get("from") || "")) prefillFrom(params.get("from"));
  await loadSpecialists();
}

// "Book a slot instead" on a withdrawn on-call request's page (?from=<its id>): the form starts
// with its patient, question and choices, so the GP only picks the slot.
async function prefillFrom(appointmentId) {
  let a;
  try {
    a = await api(`/api/v1/appointments/${appointmentId}`);
  } catch {
    return; // not this GP's, or gone: the form starts empty
  }
  const f = $("[data-booking-form]", root);
  f.patient_name.value = a.patient_name;
  f.patient_birth_date.value = a.patient_birth_date;
  f.patient_contact.value = a.patient_contact;
  f.clinical_question.value = a.clinical_question;
  f.urgency.value = a.urgency;
  f.mode.value = a.mode;
  if (f.patient_language) f.patient_language.value = a.patient_language;
  for (const name of PARTICULARS) f[name].value = a[name] || "";
  // The consent is confirmed per request, and a deadline already past is no deadline.
  f.consent_recorded.checked = false;
  if (a.answer_by && a.answer_by < new Date().toISOString().slice(0, 10)) f.answer_by.value = "";
  if (PARTICULARS.some((name) => a[name])) $("[data-particulars]", root).open = true;
  for (const box of f.querySelectorAll("input[name=invite_by]")) box.checked = a.invite_by.includes(box.value);
  if (f.patient_phone && a.patient_phone) f.patient_phone.value = a.patient_phone;
  const sms = $("[data-sms-choice]", root);
  if (sms) {
    $("[data-sms-phone]", root).hidden = !sms.checked;
    f.patient_phone.required = sms.checked;
  }
  showAlert($("[data-prefilled]", root), t("The patient and the question of the withdrawn request are filled in: choose a slot."), "info");
}

// The mobile number is asked for only with the SMS choice; a phone number typed as the
// patient's contact is taken over.
function showPhoneField() {
  const f = $("[data-booking-form]", root);
  const box = $("[data-sms-phone]", root);
  const on = $("[data-sms-choice]", root).checked;
  box.hidden = !on;
  f.patient_phone.required = on;
  const contact = f.patient_contact.value.trim();
  if (on && !f.patient_phone.value.trim() && contact && !contact.includes("@")) {
    f.patient_phone.value = contact;
  }
  if (on) f.patient_phone.focus();
}

function invitedBy(f) {
  return Array.from(f.querySelectorAll("input[name=invite_by]:checked"), (box) => box.value);
}

// Answers may arrive out of order when the user changes the selection quickly.
let specialistsRequest = 0;
let slotsRequest = 0;

async function loadSpecialists() {
  const request = ++specialistsRequest;
  offer.specialists = null;
  let specialists = [];
  let known = true;
  try {
    specialists = await api(`/api/v1/specialists?${new URLSearchParams({ specialty: specialtySelect.value })}`);
  } catch (error) {
    known = false;
    showAlert($("[data-search-error]", root), errorMessage(error));
  }
  if (request !== specialistsRequest) return;
  offer.specialists = known ? specialists.length : null;
  showOffer();
  specialistSelect.replaceChildren(
    h("option", { value: "" }, t("Any specialist")),
    ...specialists.map((s) => h("option", { value: String(s.id) }, s.display_name)),
  );
  await loadSlots();
}

async function loadSlots() {
  const from = weekStart(week);
  $("[data-week-title]", root).textContent = weekTitle(from);
  $("[data-week-prev]", root).disabled = week === 0;
  const query = specialistSelect.value ? { specialist: specialistSelect.value } : { specialty: specialtySelect.value };
  const request = ++slotsRequest;
  await showSlots(slotsBox, query, from, pick, () => request === slotsRequest);
}

function chosenSpecialty() {
  return specialties.find((s) => s.slug === specialtySelect.value) || null;
}

function specialtyName(specialty) {
  return lang === "de" ? specialty.name_de : specialty.name_en;
}

// ------------------------------------------------------------------ a consult now
// What the offer knows: the chosen specialty's presence counts (null while unknown) and how
// many specialists it has at all (null until read).
const offer = { counts: null, specialists: null };

function showOffer(counts = offer.counts) {
  offer.counts = counts;
  const specialty = chosenSpecialty();
  const box = $("[data-on-call-offer]", root);
  box.hidden = !specialty;
  if (!specialty) return;
  const name = specialtyName(specialty);
  $("[data-on-call-text]", root).textContent = t("No time for a slot? The request goes at once to every specialist in {specialty}; whoever takes it first lets the patient in.", { specialty: name });
  const nobody = $("[data-on-call-nobody]", root);
  const start = $("[data-on-call-start]", root);
  start.disabled = offer.specialists === 0;
  if (offer.specialists === 0) {
    nobody.textContent = t("Nobody can take requests in {specialty}: it has no specialists.", { specialty: name });
  } else if (counts && !counts.on_duty) {
    nobody.textContent = t("Nobody in {specialty} is on duty right now. You can still ask; if nobody takes it within {minutes} minutes, the request's page tells you.", {
      specialty: name, minutes: Number(root.dataset.claimMinutes) || 10,
    });
  }
  nobody.hidden = !(offer.specialists === 0 || (counts && !counts.on_duty));
  $("[data-written-offer]", root).hidden = !specialty;
  $("[data-written-text]", root).textContent = t("No video needed? Send the question with findings to {specialty}; a specialist answers in writing by the day you name. The patient takes no part.", { specialty: name });
  $("[data-written-start]", root).disabled = offer.specialists === 0;
}

// The same form for a slot and for a consult now; each keeps its own urgency and place of the
// patient (a consult now: urgent, and the patient usually sits in the practice).
const formChoices = {
  slot: { urgency: "routine", mode: "home" },
  on_call: { urgency: "urgent", mode: "practice" },
  written: { urgency: "routine", mode: "home" },
};
let formKind = "slot";
const questionHint = $("#question-hint", root);
const slotQuestionHint = questionHint.textContent;

function useForm(kind) {
  const f = $("[data-booking-form]", root);
  if (kind !== formKind) {
    formChoices[formKind] = { urgency: f.urgency.value, mode: f.mode.value };
    f.urgency.value = formChoices[kind].urgency;
    f.mode.value = formChoices[kind].mode;
    formKind = kind;
  }
  const onCall = kind === "on_call";
  const written = kind === "written";
  $("[data-submit]", root).textContent = written ? t("Send the written request") : onCall ? t("Request an on-call consult") : t("Book consultation");
  $("[data-back]", root).textContent = onCall || written ? t("Choose a slot instead") : t("Choose another slot");
  const reminders = $("[data-reminders]", root);
  if (reminders) reminders.hidden = onCall; // a consult now has nothing to remind of
  // In writing, the patient is not contacted and takes part nowhere: no contact, no link, no
  // place; the deadline and the consent are required (they open the folded part).
  for (const sel of ["[data-contact-field]", "[data-invite]", "[data-mode-choice]"]) $(sel, root).hidden = written;
  f.patient_contact.required = !written;
  f.answer_by.required = written;
  f.consent_recorded.required = written;
  if (written) $("[data-particulars]", root).open = true;
  // A request to the specialty is read by all of its specialists before one takes it.
  questionHint.textContent = onCall || written
    ? t("Every specialist of the specialty can read the question before one takes the request: please write it without the patient's name. Relevant findings and medication.")
    : slotQuestionHint;
  $("[data-booking-error]", root).hidden = true;
}

function askNow() {
  asking = chosenSpecialty();
  if (!asking) return;
  chosen = null;
  useForm("on_call");
  $("[data-chosen-slot]", root).textContent = t("On-call consult · {specialty}: the request goes to every specialist in {specialty} as soon as you send it.", {
    specialty: specialtyName(asking),
  });
  showStep(root, "form");
}

function askInWriting() {
  asking = chosenSpecialty();
  if (!asking) return;
  chosen = null;
  useForm("written");
  $("[data-chosen-slot]", root).textContent = t("Written Telekonsil · {specialty}: every specialist in {specialty} sees the request; whoever takes it answers in writing. Attach findings on the request's page after sending.", {
    specialty: specialtyName(asking),
  });
  showStep(root, "form");
}

function pick(slot) {
  chosen = slot;
  asking = null;
  useForm("slot");
  $("[data-chosen-slot]", root).textContent = t("{time} with {specialist}", {
    time: formatDateTime(slot.starts_at), specialist: slot.specialist_name,
  });
  showStep(root, "form");
}

/** Where the form goes: a booking of the chosen slot, or an on-call request. */
function submission(f) {
  if (asking && formKind === "written") {
    return { path: "/api/v1/written-requests", body: { specialty_id: asking.id, ...writtenBody(f) } };
  }
  if (asking) return { path: "/api/v1/on-call", body: { specialty_id: asking.id, ...consultBody(f) } };
  return {
    path: "/api/v1/appointments",
    body: { specialist_id: chosen.specialist_id, starts_at: chosen.starts_at, ...consultBody(f) },
  };
}

// The Telekonsil request's particulars in the folded part of the form; empty ones are sent
// as null (not given).
const PARTICULARS = [
  "patient_insurance_number", "patient_sex", "diagnosis_code", "diagnosis_certainty",
  "diagnosis_text", "medication", "answer_by",
];

function particulars(f) {
  return Object.fromEntries(PARTICULARS.map((name) => [name, f[name].value.trim() || null]));
}

function consultBody(f) {
  return {
    ...particulars(f),
    consent_recorded: f.consent_recorded.checked,
    patient_name: f.patient_name.value.trim(),
    patient_birth_date: f.patient_birth_date.value,
    patient_contact: f.patient_contact.value.trim(),
    clinical_question: f.clinical_question.value.trim(),
    urgency: f.urgency.value,
    mode: f.mode.value,
    invite_by: invitedBy(f),
    patient_language: f.patient_language ? f.patient_language.value : "de",
    patient_phone: invitedBy(f).includes("sms") ? f.patient_phone.value.trim() || null : null,
  };
}

// What a written request sends: the Telekonsil part, without how to reach the patient.
function writtenBody(f) {
  return {
    ...particulars(f),
    consent_recorded: f.consent_recorded.checked,
    patient_name: f.patient_name.value.trim(),
    patient_birth_date: f.patient_birth_date.value,
    clinical_question: f.clinical_question.value.trim(),
    urgency: f.urgency.value,
  };
}

function invalidFields(f) {
  const missing = [];
  const written = asking && formKind === "written";
  const names = ["patient_name", "patient_birth_date", "clinical_question"];
  if (!written) names.push("patient_contact");
  if (written) names.push("answer_by", "consent_recorded");
  if (!written && invitedBy(f).includes("sms")) names.push("patient_phone");
  for (const name of names) {
    const field = f[name];
    const bad = field.type === "checkbox" ? !field.checked : !field.value.trim() || !field.checkValidity();
    field.setAttribute("aria-invalid", String(bad));
    if (bad) missing.push(field);
  }
  return missing;
}

async function book(event) {
  event.preventDefault();
  const f = event.target;
  const errorBox = $("[data-booking-error]", root);
  const missing = invalidFields(f);
  if (missing.length) {
    showAlert(errorBox, t("Please fill in all fields."));
    missing[0].focus();
    return;
  }
  await busy(f.querySelector("button[type=submit]"), async () => {
    try {
      const { path, body } = submission(f);
      const result = await api(path, {
        method: "POST", body, headers: { "Idempotency-Key": idempotencyKey(path, body) },
      });
      pending = null;
      if (asking && formKind === "written") {
        // The request's page: its state, the documents to attach, the conversation.
        location.assign(`/gp/appointments/${result.id}`);
        return;
      }
      if (asking) {
        // The request's page shows its state live, and the patient's link once.
        handOverLink(result.appointment.id, result.link);
        location.assign(`/gp/appointments/${result.appointment.id}`);
        return;
      }
      f.reset();
      if ($("[data-sms-choice]", root)) showPhoneField();
      showLink($("[data-link-box]", root), result.link, result.appointment);
      showSending(result.appointment);
      $("[data-detail-link]", root).href = `/gp/appointments/${result.appointment.id}`;
      mountDocuments($("[data-documents-box]", root), result.appointment.id);
      showStep(root, "done");
    } catch (error) {
      showAlert(errorBox, fieldErrors(error) || bookingError(error));
      markFields(f, error);
      errorBox.focus();
      if (error instanceof ApiError && ["slot_taken", "slot_unavailable", "no_specialist"].includes(error.code)) {
        $("[data-back]", root).focus();
      }
    }
  });
}

function bookingError(error) {
  if (error instanceof ApiError && error.code === "no_specialist" && asking) {
    return t("Nobody can take requests in {specialty}: it has no specialists.", { specialty: specialtyName(asking) });
  }
  return errorMessage(error);
}

function showSending(appointment) {
  const notes = [];
  if (appointment.invite_by.includes("email")) {
    notes.push(t("Konsil is sending the invitation to {address}.", { address: appointment.patient_contact }));
  }
  if (appointment.invite_by.includes("sms")) {
    notes.push(t("Konsil is sending the invitation by SMS to {number}.", { number: appointment.patient_phone }));
  }
  const sending = $("[data-mailed]", root);
  sending.hidden = !notes.length;
  sending.textContent = notes.length ? `${notes.join(" ")} ${t("The booking shows whether it arrived.")}` : "";
}

// One key per booking the GP means to make: sending the same form again after a lost answer
// (a dead spot, a server restart) gets the first answer, the same booking and link, instead
// of "slot taken" for the slot just booked. A changed form is a new booking with a new key.
let pending = null; // { body: JSON text, key }

function idempotencyKey(path, body) {
  const text = JSON.stringify([path, body]);
  if (!pending || pending.body !== text) {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    pending = { body: text, key: Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("") };
  }
  return pending.key;
}

const FIELD_LABELS = {
  patient_name: () => t("Patient's full name"),
  patient_birth_date: () => t("Date of birth"),
  patient_contact: () => t("Patient's email or mobile number"),
  clinical_question: () => t("Clinical question"),
  invite_by: () => t("Send the link to the patient"),
  patient_phone: () => t("Patient's mobile number"),
  patient_insurance_number: () => t("Insurance number"),
  patient_sex: () => t("Sex"),
  diagnosis_code: () => t("ICD-10-GM code"),
  diagnosis_certainty: () => t("Diagnostic certainty"),
  diagnosis_text: () => t("Diagnosis in words"),
  medication: () => t("Current medication"),
  answer_by: () => t("Answer needed by"),
  consent_recorded: () => t("Consent"),
};

// The fields the server refused are marked; one in the folded Telekonsil part opens it.
function markFields(f, error) {
  const fields = (error instanceof ApiError && error.detail.fields) || [];
  const refused = new Set(fields.map((e) => e.field));
  for (const name of Object.keys(FIELD_LABELS)) {
    const field = f[name];
    if (field instanceof HTMLElement) field.setAttribute("aria-invalid", String(refused.has(name)));
  }
  if (PARTICULARS.some((name) => refused.has(name))) $("[data-particulars]", root).open = true;
}

function fieldErrors(error) {
  const fields = error instanceof ApiError && error.detail.fields;
  if (!fields || !fields.length) return "";
  return `${t("Please check your entries.")} ${fields.map((e) => `${(FIELD_LABELS[e.field] || (() => e.field))()}: ${e.message}`).join("; ")}`;
}

init();
