// The JSON API from page scripts: same-origin cookies, the CSRF header on unsafe methods,
// and errors as ApiError carrying the API's stable code for a translated message.
import { t } from "./i18n.js";

let csrfToken = document.querySelector('meta[name="csrf-token"]')?.content || "";

export function setCsrfToken(token) {
  csrfToken = token || "";
}

export function getCsrfToken() {
  return csrfToken;
}

export class ApiError extends Error {
  constructor(status, code, message, detail) {
    super(message);
    this.status = status;
    this.code = code;
    this.detail = detail || {};
  }
}

// Messages per API error code; the server's German text is the fallback.
const MESSAGES = {
  invalid_credentials: () => t("Email address or password is incorrect."),
  invalid_code: () => t("The code is wrong or was already used. Please try again."),
  second_factor_required: () => t("Please confirm your sign-in with your second factor."),
  second_factor_enrolment_required: () => t("Please set up two-factor sign-in first."),
  reauth_required: () => t("Please confirm it's you."),
  too_many_attempts: (error) => waitMessage(error.detail.retry_after),
  not_authenticated: () => t("Your session has ended. Please log in again."),
  csrf_failed: () => t("The security check failed. Please reload the page."),
  forbidden: () => t("You are not allowed to do this."),
  not_your_room: () => t("This consultation room does not belong to your appointment."),
  not_found: () => t("Not found."),
  records_deleted: () => t("The report was deleted after the retention period."),
  link_invalid: () => t("This link is invalid or has been revoked."),
  link_expired: () => t("This link has expired."),
  slot_taken: () => t("This slot has just been booked by someone else. Please choose another."),
  slot_unavailable: () => t("This slot is not offered. Please choose another."),
  invalid_transition: () => t("This step is not possible in the room's current state."),
  room_closed: () => t("This consultation has ended."),
  payload_too_large: () => t("The file is too large."),
  rate_limited: () => t("Too many requests. Please wait a moment."),
  unavailable: () => t("The service is busy. Please try again shortly."),
  invalid_input: () => t("Please check your entries."),
};

/** "Try again in …", from the seconds the server asks to wait. */
function waitMessage(seconds) {
  if (!Number.isFinite(seconds) || seconds <= 0) return t("Too many attempts. Please wait a few minutes.");
  if (seconds < 10) return t("Too many attempts. Please wait a moment, then try again.");
  if (seconds < 90) return t("Too many attempts. Please try again in {seconds} seconds.", { seconds });
  return t("Too many attempts. Please try again in {minutes} minutes.", { minutes: Math.ceil(seconds / 60) });
}

export function errorMessage(error) {
  if (error instanceof ApiError) {
    const known = MESSAGES[error.code];
    return known ? known(error) : error.message || t("Something went wrong. Please try again.");
  }
  return t("No connection to the server. Please check your internet connection.");
}

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/** fetch() for the JSON API. Resolves to the parsed body (or null), rejects with ApiError. */
export async function api(path, { method = "GET", body, headers = {}, raw = false } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json", ...headers } };
  if (UNSAFE.has(method) && csrfToken) init.headers["X-CSRF-Token"] = csrfToken;
  if (body instanceof FormData || body instanceof Blob) {
    init.body = body;
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    let error = {};
    try {
      error = (await response.json()).error || {};
    } catch {
      // Not JSON (a proxy's error page): keep the status.
    }
    throw new ApiError(response.status, error.code || `http_${response.status}`, error.message, error.detail);
  }
  // Every answered request counts as activity for the idle timeout (idle.js).
  window.dispatchEvent(new Event("konsil:activity"));
  if (raw) return response;
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}
