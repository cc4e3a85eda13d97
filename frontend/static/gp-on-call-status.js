// GP: an on-call request's state at the top of its page (frontend/templates/gp/appointment.html,
// [data-on-call]): waiting for a specialist of the specialty (since when, until when), taken
// (by whom, when), or nobody took it in time, with ask again, a slot instead and withdraw, or
// nobody took it by its planned end (over: a slot instead or withdraw).
// While the request is open it is read again every few seconds with
// GET /api/v1/appointments/{id}: not while the page is hidden (read at once when it is seen
// again), and no more once it is taken or closed.
import { api, errorMessage, ApiError } from "./api.js";
import { $, showAlert, busy } from "./dom.js";
import { t, formatTime } from "./i18n.js";
import { onCallState, onCallTitle } from "./gp-on-call.js";

const WATCH_MS = 5000;

/** Minutes from now to `value` (negative: ago), rounded towards now. */
function minutesFrom(value) {
  return Math.trunc((new Date(value).getTime() - Date.now()) / 60000);
}

function stateText(a, state) {
  if (expired(a, state)) return t("Nobody took the request in time.");
  switch (state) {
    case "waiting": return t("The request is waiting for a specialist in {specialty} to take it.", { specialty: a.specialty });
    case "claimed": return t("Taken by {name} at {time}.", { name: a.specialist_name, time: formatTime(a.claimed_at || a.starts_at) });
    case "unclaimed": return t("Nobody has taken the request yet");
    default: return a.status === "cancelled" ? t("The request was withdrawn.") : t("The request is no longer open.");
  }
}

/** Whether nobody took the open request by its planned end: then it is over for good (the
 * server neither lists it to the specialty nor lets anybody take it or ask again). */
function expired(a, state) {
  return (state === "waiting" || state === "unclaimed") && new Date(a.ends_at).getTime() <= Date.now();
}

// The rules (app/scheduling/on_call.py): the specialty's specialists see the request and can
// take it until its planned end (ends_at); if nobody has by claim_until, the GP is told and may
// ask again (urgent, a new claim_until), still only until ends_at.
function timesText(a, state) {
  if (state === "claimed") return t("Asked at {time}.", { time: formatTime(a.starts_at) });
  if (state === "closed") return "";
  const ago = -minutesFrom(a.starts_at);
  const asked = ago >= 1
    ? t("Asked at {time} ({minutes} min ago).", { time: formatTime(a.starts_at), minutes: ago })
    : t("Asked at {time} (just now).", { time: formatTime(a.starts_at) });
  const end = formatTime(a.ends_at);
  if (expired(a, state)) {
    return [asked, t("Nobody took it by {time}: the request has ended. Book a slot instead or withdraw it.", { time: end })].join(" ");
  }
  let then = "";
  if (state === "unclaimed") {
    then = t("Specialists in {specialty} can still take it until {time}; then it ends.", { specialty: a.specialty, time: end });
  } else if (a.claim_until && minutesFrom(a.claim_until) >= 1) {
    then = t("If nobody takes it by {time} ({minutes} min left), you will be told here and can ask again.", {
      time: formatTime(a.claim_until), minutes: minutesFrom(a.claim_until),
    });
  } else if (a.claim_until) {
    then = t("If nobody takes it by {time}, you will be told here and can ask again.", { time: formatTime(a.claim_until) });
  }
  const last = state === "waiting"
    ? t("It can be taken until {time} at the latest; then it ends.", { time: end })
    : "";
  return [asked, then, last].filter(Boolean).join(" ");
}

function requestError(error) {
  if (error instanceof ApiError && error.code === "already_claimed") return t("A specialist has just taken the request.");
  if (error instanceof ApiError && error.code === "invalid_transition") return t("The request is no longer open.");
  return errorMessage(error);
}

/**
 * Shows an on-call request's state in `box`. The page calls `show(appointment)` after each of
 * its own reads; `onRead(appointment)` hears the panel's reads and changes, `reload()` reads
 * the whole page again (after a withdrawal). `heading` is the page's h1.
 */
export function mountOnCallStatus(box, { appointmentId, heading, notice, errorBox, onRead, reload }) {
  const line = $("[data-on-call-state]", box);
  const actions = $("[data-on-call-actions]", box);
  let appointment = null;
  let timer = null;
  let reading = false;
  // Counts the page's reads and the panel's changes: a re-read under way meanwhile is stale.
  let changes = 0;

  function render() {
    const a = appointment;
    box.hidden = a.kind !== "on_call";
    if (box.hidden) return;
    const title = onCallTitle(a);
    heading.textContent = title;
    document.title = `${title} · Konsil`;
    const state = onCallState(a);
    box.dataset.state = state;
    const text = stateText(a, state);
    // Written only when it changes: the status region announces each write.
    if (line.textContent !== text) line.textContent = text;
    $("[data-on-call-times]", box).textContent = timesText(a, state);
    // Nobody took it: ask again, a slot instead, or withdraw; while it waits: withdraw; once
    // withdrawn: a slot instead.
    const over = expired(a, state);
    $("[data-escalate]", actions).hidden = state !== "unclaimed" || over;
    $("[data-book-instead]", actions).hidden = !(state === "unclaimed" || over || (state === "closed" && a.status === "cancelled"));
    $("[data-withdraw]", actions).hidden = !(state === "waiting" || state === "unclaimed");
    actions.hidden = [...actions.children].every((button) => button.hidden);
  }

  function take(fresh) {
    appointment = fresh;
    render();
    onRead(fresh);
  }

  function open() {
    return appointment?.kind === "on_call" && ["waiting", "unclaimed"].includes(onCallState(appointment));
  }

  function watch() {
    clearTimeout(timer);
    timer = null;
    if (open() && !document.hidden) timer = setTimeout(readAgain, WATCH_MS);
  }

  async function readAgain() {
    clearTimeout(timer);
    timer = null;
    if (reading) return; // the read under way schedules the next
    reading = true;
    const before = changes;
    try {
      const fresh = await api(`/api/v1/appointments/${appointmentId}`);
      if (before === changes) take(fresh);
    } catch (error) {
      // A dead spot or a restart: the next round tries again. A lost session or access: no.
      if (error instanceof ApiError && [401, 403, 404].includes(error.status)) {
        showAlert(errorBox, errorMessage(error));
        return;
      }
    } finally {
      reading = false;
    }
    watch();
  }

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      clearTimeout(timer);
      timer = null;
    } else if (open()) {
      readAgain();
    }
  });

  async function escalate(event) {
    changes += 1;
    await busy(event.target, async () => {
      try {
        take(await api(`/api/v1/on-call/${appointmentId}/escalate`, { method: "POST" }));
        showAlert(notice, t("{specialty} has been asked again.", { specialty: appointment.specialty }), "success");
      } catch (error) {
        showAlert(errorBox, requestError(error));
        take(await api(`/api/v1/appointments/${appointmentId}`).catch(() => appointment));
      }
    });
    line.focus();
    watch();
  }

  /** Withdraws the request unless a specialist has taken it meanwhile; whether it did. */
  async function withdrawRequest(button) {
    changes += 1;
    return busy(button, async () => {
      try {
        // Only while nobody has taken it (the server decides, also against a claim at the
        // same moment).
        take(await api(`/api/v1/on-call/${appointmentId}/withdraw`, { method: "POST" }));
        notice.hidden = true; // the request's state says it
        return true;
      } catch (error) {
        if (error instanceof ApiError && error.code === "already_claimed") {
          take(await api(`/api/v1/appointments/${appointmentId}`).catch(() => appointment));
          showAlert(errorBox, t("A specialist has just taken the request: it was not withdrawn."));
          return false;
        }
        showAlert(errorBox, requestError(error));
        return false;
      } finally {
        watch();
      }
    });
  }

  async function withdraw(event) {
    if (!window.confirm(t("Withdraw the request? The patient's link stops working."))) return;
    if (await withdrawRequest(event.target)) await reload();
    line.focus();
  }

  // A slot instead: the request is withdrawn (unless it was already) and the booking page
  // opens for the same specialty, with the patient and the question filled in.
  async function bookInstead(event) {
    const specialty = appointment.specialty;
    if (onCallState(appointment) !== "closed") {
      if (!window.confirm(t("Withdraw the request and book a slot instead? The patient's link stops working; the booking gets a new one."))) return;
      if (!(await withdrawRequest(event.target))) return;
    }
    const query = new URLSearchParams({ from: String(appointmentId) });
    const specialties = await api("/api/v1/specialties").catch(() => []);
    const found = specialties.find((s) => s.name_de === specialty || s.name_en === specialty);
    if (found) query.set("specialty", found.slug);
    location.assign(`/gp?${query}`);
  }

  $("[data-escalate]", actions).addEventListener("click", escalate);
  $("[data-withdraw]", actions).addEventListener("click", withdraw);
  $("[data-book-instead]", actions).addEventListener("click", bookInstead);

  return {
    /** The appointment as the page read it now. */
    show(fresh) {
      changes += 1;
      appointment = fresh;
      render();
      watch();
    },
  };
}
