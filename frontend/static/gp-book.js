// GP: find a specialty or specialist, pick a free slot, book with patient data and question.
import { api, errorMessage, ApiError } from "./api.js";
import { $, h, showStep, showAlert, busy } from "./dom.js";
import { t, lang, formatDateTime } from "./i18n.js";
import { showSlots, weekStart, weekTitle } from "./slots.js";
import { showLink } from "./linkbox.js";
import { mountDocuments } from "./documents.js";
import { watchPresence } from "./gp-presence.js";

const root = $("#gp-book");
const form = $("[data-search-form]", root);
const specialtySelect = form.specialty;
const specialistSelect = form.specialist;
const slotsBox = $("[data-slots]", root);
let week = 0;
let chosen = null;
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
  const wanted = new URLSearchParams(location.search).get("specialty");
  if (wanted && specialties.some((s) => s.slug === wanted)) specialtySelect.value = wanted;
  const presence = watchPresence($("[data-presence-line]", root), () => specialtySelect.value);
  specialtySelect.addEventListener("change", () => { week = 0; presence.show(); loadSpecialists(); });
  specialistSelect.addEventListener("change", () => { week = 0; loadSlots(); });
  $("[data-week-prev]", root).addEventListener("click", () => { week = Math.max(0, week - 1); loadSlots(); });
  $("[data-week-next]", root).addEventListener("click", () => { week += 1; loadSlots(); });
  $("[data-back]", root).addEventListener("click", () => { showStep(root, "search"); loadSlots(); });
  $("[data-booking-form]", root).addEventListener("submit", book);
  const smsChoice = $("[data-sms-choice]", root);
  if (smsChoice) smsChoice.addEventListener("change", showPhoneField);
  await loadSpecialists();
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
  let specialists = [];
  try {
    specialists = await api(`/api/v1/specialists?${new URLSearchParams({ specialty: specialtySelect.value })}`);
  } catch (error) {
    showAlert($("[data-search-error]", root), errorMessage(error));
  }
  if (request !== specialistsRequest) return;
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

function pick(slot) {
  chosen = slot;
  $("[data-chosen-slot]", root).textContent = t("{time} with {specialist}", {
    time: formatDateTime(slot.starts_at), specialist: slot.specialist_name,
  });
  showStep(root, "form");
}

function bookingBody(f) {
  return {
    specialist_id: chosen.specialist_id,
    starts_at: chosen.starts_at,
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

function invalidFields(f) {
  const missing = [];
  const names = ["patient_name", "patient_birth_date", "patient_contact", "clinical_question"];
  if (invitedBy(f).includes("sms")) names.push("patient_phone");
  for (const name of names) {
    const field = f[name];
    const bad = !field.value.trim() || !field.checkValidity();
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
      const body = bookingBody(f);
      const result = await api("/api/v1/appointments", {
        method: "POST", body, headers: { "Idempotency-Key": idempotencyKey(body) },
      });
      pending = null;
      f.reset();
      if ($("[data-sms-choice]", root)) showPhoneField();
      showLink($("[data-link-box]", root), result.link, result.appointment);
      showSending(result.appointment);
      $("[data-detail-link]", root).href = `/gp/appointments/${result.appointment.id}`;
      mountDocuments($("[data-documents-box]", root), result.appointment.id);
      showStep(root, "done");
    } catch (error) {
      showAlert(errorBox, fieldErrors(error) || errorMessage(error));
      errorBox.focus();
      if (error instanceof ApiError && (error.code === "slot_taken" || error.code === "slot_unavailable")) {
        $("[data-back]", root).focus();
      }
    }
  });
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

function idempotencyKey(body) {
  const text = JSON.stringify(body);
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
};

function fieldErrors(error) {
  const fields = error instanceof ApiError && error.detail.fields;
  if (!fields || !fields.length) return "";
  return `${t("Please check your entries.")} ${fields.map((e) => `${(FIELD_LABELS[e.field] || (() => e.field))()}: ${e.message}`).join("; ")}`;
}

init();
