// Specialist: the live queue (websocket dashboard + GET /api/v1/queue): who waits since
// when; admit, no-show, transfer, end; today's appointments; the late notice for the
// waiting patients; the knock when someone enters the waiting room.
import { api, errorMessage, ApiError } from "./api.js";
import { $, h, showAlert, busy } from "./dom.js";
import { t, formatTime, formatDate, formatDateTime, minutesSince } from "./i18n.js";
import { ROOM, label } from "./labels.js";
import { Signaling } from "./signaling.js";
import { Knocker, arrivals, inConsultation, listenForCallPages, titleWithCount } from "./knock.js";
import { mountPresence } from "./presence-toggle.js";
import { ConnectionNotice } from "./connection-notice.js";

const root = $("#queue");
const errorBox = $("[data-error]", root);
const status = $("[data-live-status]", root);
const baseTitle = document.title;
let queue = null;
let colleagues = null;

// ------------------------------------------------------------------ knock alert
const sound = $("[data-knock-sound]", root);
const soundToggle = $("[data-knock-toggle]", root);
const notifyAllow = $("[data-notify-allow]", root);
const knockStatus = $("[data-knock-status]", root);
const knocker = new Knocker();
let known = null; // the waiting appointment ids of the last snapshot (null: none yet)
let knownRequests = null; // the open on-call request ids of the last snapshot
let lastCallPageAt = null;
let soundOn = localStorage.getItem("konsil.knock") !== "off";

function knockState() {
  soundToggle.setAttribute("aria-pressed", String(soundOn));
  soundToggle.textContent = soundOn ? t("Knock sound: on") : t("Knock sound: off");
  const quiet = inConsultation(queue, lastCallPageAt, Date.now());
  root.dataset.inConsultation = String(quiet);
  knockStatus.textContent = quiet
    ? t("No sound while you are in a consultation.")
    : soundOn ? t("A short sound plays when a patient enters the waiting room.") : "";
  notifyAllow.hidden = !("Notification" in window) || Notification.permission !== "default";
}

function knock(newcomers, title = t("Konsil: a patient is waiting"), body = null) {
  if (!newcomers.length || inConsultation(queue, lastCallPageAt, Date.now())) return;
  if (!knocker.take(Date.now())) return;
  root.dataset.knocks = String(Number(root.dataset.knocks || 0) + 1);
  if (soundOn) {
    sound.currentTime = 0;
    // Refused before the first click on the page (autoplay rules): the title still counts.
    sound.play().catch(() => {});
  }
  if ("Notification" in window && Notification.permission === "granted" && document.visibilityState !== "visible") {
    // No patient name: a notification may show on a screen others can see.
    try {
      new Notification(title, {
        body: body ?? t("Waiting now: {count}", { count: queue.waiting.length }),
        tag: "konsil-knock",
        icon: document.querySelector("link[rel=icon]")?.href,
      });
    } catch {
      // Chrome on Android allows notifications only from a service worker: the sound and
      // the title count still tell.
    }
  }
}

// ------------------------------------------------------------------ presence
const presence = mountPresence($("[data-presence-card]", root), (error) => fail(error));

function snapshot(next) {
  queue = next;
  presence.refresh(); // a consultation that began or ended changes it
  const newcomers = arrivals(known, queue.waiting);
  known = new Set(queue.waiting.map((e) => e.appointment_id));
  document.title = titleWithCount(baseTitle, queue.waiting.length);
  // A new on-call request knocks like a patient arriving (not while in a consultation).
  // So does one asked again (a new time limit), as its GP is still waiting for somebody.
  const requests = (queue.on_call || []).map((e) => `${e.appointment_id}:${e.claim_until}`);
  const asked = knownRequests === null ? [] : requests.filter((key) => !knownRequests.has(key));
  knownRequests = new Set(requests);
  if (newcomers.length) knock(newcomers);
  else knock(asked, t("Konsil: a GP asks for a consult now"), t("Open requests: {count}", { count: requests.length }));
  knockState();
  render();
}

soundToggle.addEventListener("click", () => {
  soundOn = !soundOn;
  localStorage.setItem("konsil.knock", soundOn ? "on" : "off");
  knockState();
});
notifyAllow.addEventListener("click", async () => {
  // Asked only on this click, never by itself.
  await Notification.requestPermission();
  knockState();
});
listenForCallPages((at) => {
  lastCallPageAt = at;
  knockState();
});

// ------------------------------------------------------------------ late notice
const delayCurrent = $("[data-delay-current]", root);
const delayClear = $("[data-delay-clear]", root);
const delayForm = $("[data-delay-form]", root);

function renderDelay() {
  const notice = queue?.delay;
  delayClear.hidden = !notice;
  if (!notice) {
    delayCurrent.textContent = t("You have not given a late notice today.");
    return;
  }
  const parts = [];
  if (notice.minutes) parts.push(t("Waiting patients read: about {minutes} minutes late.", { minutes: notice.minutes }));
  if (notice.note) parts.push(t("Your note: \u201c{note}\u201d", { note: notice.note }));
  delayCurrent.textContent = parts.join(" ");
}

async function sendDelay(button, body) {
  await busy(button, async () => {
    try {
      const notice = await api("/api/v1/queue/delay", { method: "PUT", body });
      // At once, so that a second click adds to this one (the snapshot follows).
      queue = { ...queue, delay: notice };
      renderDelay();
      showAlert(errorBox, "");
    } catch (error) {
      // What was wrong with the input (the server's words), not only that something was.
      const fields = (error instanceof ApiError && error.detail.fields) || [];
      showAlert(errorBox, [errorMessage(error), ...fields.map((f) => f.message)].join(" "));
      errorBox.focus();
    }
  });
}

for (const button of root.querySelectorAll("[data-delay-add]")) {
  button.addEventListener("click", () => {
    const now = queue?.delay?.minutes || 0;
    const minutes = Math.min(180, now + Number(button.dataset.delayAdd));
    sendDelay(button, { minutes, note: queue?.delay?.note ?? null });
  });
}
delayClear.addEventListener("click", async () => {
  await busy(delayClear, async () => {
    try {
      await api("/api/v1/queue/delay", { method: "DELETE" });
      queue = { ...queue, delay: null };
      renderDelay();
    } catch (error) {
      fail(error);
    }
  });
});
delayForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const note = delayForm.note.value.trim();
  sendDelay(delayForm.querySelector("button"), { minutes: queue?.delay?.minutes ?? null, note: note || null })
    .then(() => { if (queue?.delay?.note === (note || null)) delayForm.note.value = ""; });
});

// ------------------------------------------------------------------ on-call requests
const onCallCard = $("[data-on-call]", root);
const onCallStatus = $("[data-on-call-status]", root);

function renderOnCall() {
  const requests = queue.on_call || [];
  onCallCard.hidden = !requests.length && !onCallStatus.textContent;
  $("[data-on-call-count]", root).textContent = String(requests.length);
  $("[data-on-call-list]", root).replaceChildren(...requests.map(onCallEntry));
}

function onCallEntry(e) {
  const minutes = minutesSince(e.requested_at);
  const ago = minutes < 1 ? t("just now") : t("{minutes} min ago", { minutes });
  const where = e.mode === "practice" ? t("patient at the practice") : t("patient at home");
  return h("li", { dataset: { request: e.appointment_id } },
    h("p", {},
      e.urgency === "urgent" ? h("span", { class: "badge urgent" }, t("Urgent")) : null, " ",
      e.patient_waiting ? h("span", { class: "badge waiting" }, t("Patient is waiting")) : null, " ",
      e.unclaimed ? h("span", { class: "badge" }, t("Overdue: the GP was told")) : null),
    h("p", { class: "question" }, e.clinical_question),
    h("p", { class: "muted" }, t("{gp}, {practice} · {age} years · {where} · asked at {time} ({ago})", {
      gp: e.gp_name, practice: e.practice || "–", age: e.patient_age, where,
      time: formatTime(e.requested_at), ago,
    })),
    h("div", { class: "row" },
      h("button", { type: "button", class: "primary", dataset: { action: "claim" }, onclick: (ev) => claim(ev, e) }, t("Take over"))));
}

async function claim(event, entry) {
  await busy(event.target, async () => {
    try {
      await api(`/api/v1/on-call/${entry.appointment_id}/claim`, { method: "POST" });
      onCallStatus.textContent = t("You took over the request. It is now among your appointments; admit the patient once they are waiting.");
      showAlert(errorBox, "");
      await refresh();
    } catch (error) {
      if (error instanceof ApiError && error.code === "already_claimed") {
        onCallStatus.textContent = t("A colleague was faster: the request is theirs now.");
        await refresh();
        return;
      }
      fail(error);
    }
  });
}

// ------------------------------------------------------------------ written requests
const writtenCard = $("[data-written]", root);
const writtenStatus = $("[data-written-status]", root);

function renderWritten() {
  const requests = queue.written || [];
  writtenCard.hidden = !requests.length && !writtenStatus.textContent;
  $("[data-written-count]", root).textContent = String(requests.length);
  $("[data-written-list]", root).replaceChildren(...requests.map(writtenEntry));
}

function writtenEntry(e) {
  const due = formatDate(`${e.answer_by}T12:00:00Z`);
  const who = e.mine ? `${e.patient_name} · ` : "";
  return h("li", { dataset: { writtenRequest: e.appointment_id, mine: String(e.mine) } },
    h("p", {},
      e.mine ? h("span", { class: "badge" }, t("Yours to answer")) : null, " ",
      e.urgency === "urgent" ? h("span", { class: "badge urgent" }, t("Urgent")) : null, " ",
      h("span", { class: e.overdue ? "badge warn" : "badge" }, e.overdue ? t("Overdue since {date}", { date: due }) : t("Answer by {date}", { date: due })), " ",
      e.question_open_since ? h("span", { class: "badge waiting" }, t("Waiting for the GP's answer")) : null),
    h("p", { class: "question" }, e.clinical_question),
    h("p", { class: "muted" }, t("{who}{gp}, {practice} · {age} years · sent {time}", {
      who, gp: e.gp_name, practice: e.practice || "–", age: e.patient_age, time: formatDateTime(e.requested_at),
    })),
    h("div", { class: "row" }, e.mine
      ? h("a", { class: "button primary", href: `/specialist/appointments/${e.appointment_id}` }, t("Open and answer"))
      : h("button", { type: "button", class: "primary", dataset: { action: "claim-written" }, onclick: (ev) => claimWritten(ev, e) }, t("Take over"))));
}

async function claimWritten(event, entry) {
  await busy(event.target, async () => {
    try {
      await api(`/api/v1/written-requests/${entry.appointment_id}/claim`, { method: "POST" });
      location.assign(`/specialist/appointments/${entry.appointment_id}`);
    } catch (error) {
      if (error instanceof ApiError && error.code === "already_claimed") {
        writtenStatus.textContent = t("A colleague was faster: the request is theirs now.");
        await refresh();
        return;
      }
      fail(error);
    }
  });
}

function render() {
  if (!queue) return;
  renderDelay();
  renderOnCall();
  renderWritten();
  const waiting = $("[data-waiting]", root);
  $("[data-waiting-count]", root).textContent = String(queue.waiting.length);
  $("[data-today-title]", root).textContent = t("Today, {date}", { date: formatDate(`${queue.day}T12:00:00Z`) });
  waiting.replaceChildren(...(queue.waiting.length
    ? queue.waiting.map(waitingEntry)
    : [h("li", { class: "muted" }, t("Nobody is waiting."))]));
  $("[data-today]", root).replaceChildren(...(queue.today.length
    ? queue.today.map(todayEntry)
    : [h("li", { class: "muted" }, t("No appointments today."))]));
}

function waitingEntry(e) {
  const minutes = e.waiting_since ? minutesSince(e.waiting_since) : 0;
  return h("li", { dataset: { appointment: e.appointment_id } },
    h("p", {},
      h("strong", {}, e.patient_name), " ",
      e.urgency === "urgent" ? h("span", { class: "badge urgent" }, t("Urgent")) : null),
    h("p", { class: "muted" }, t("Appointment {time} · booked by {gp} · waiting for {minutes} min (since {since})", {
      time: formatTime(e.starts_at), gp: e.gp_name, minutes, since: e.waiting_since ? formatTime(e.waiting_since) : "–",
    })),
    h("div", { class: "row" },
      h("button", { type: "button", class: "primary", dataset: { action: "admit" }, onclick: (ev) => admit(ev, e) }, t("Admit")),
      h("button", { type: "button", dataset: { action: "transfer" }, onclick: () => transfer(e) }, t("Transfer")),
      h("a", { class: "button", href: `/specialist/appointments/${e.appointment_id}` }, t("Case"))));
}

function todayEntry(e) {
  const live = e.room_state === "admitted" || e.room_state === "in_call";
  const open = ["scheduled", "waiting"].includes(e.room_state);
  const started = new Date(e.starts_at).getTime() <= Date.now();
  return h("li", { dataset: { appointment: e.appointment_id } },
    h("p", {}, h("strong", {}, `${formatTime(e.starts_at)} ${e.patient_name}`), " ",
      h("span", { class: `badge ${e.room_state}` }, label(ROOM, e.room_state)),
      e.urgency === "urgent" ? h("span", { class: "badge urgent" }, t("Urgent")) : null),
    h("p", { class: "muted" }, t("booked by {gp}", { gp: e.gp_name })),
    h("div", { class: "row" },
      live ? h("a", { class: "button primary", href: `/call/${e.appointment_id}` }, t("Back to the call")) : null,
      live ? h("button", { type: "button", dataset: { action: "end" }, onclick: (ev) => action(ev, e, "end") }, t("End")) : null,
      open && started ? h("button", { type: "button", dataset: { action: "no-show" }, onclick: (ev) => action(ev, e, "no-show") }, t("No-show")) : null,
      open && !started ? h("button", { type: "button", onclick: () => transfer(e) }, t("Transfer")) : null,
      h("a", { class: "button", href: `/specialist/appointments/${e.appointment_id}` }, t("Case and report"))));
}

async function admit(event, entry) {
  await busy(event.target, async () => {
    try {
      await api(`/api/v1/rooms/${entry.appointment_id}/admit`, { method: "POST" });
      window.location.assign(`/call/${entry.appointment_id}`);
    } catch (error) {
      fail(error);
    }
  });
}

async function action(event, entry, name) {
  if (name === "no-show" && !window.confirm(t("Mark {patient} as not attended?", { patient: entry.patient_name }))) return;
  await busy(event.target, async () => {
    try {
      await api(`/api/v1/rooms/${entry.appointment_id}/${name}`, { method: "POST" });
      await refresh();
    } catch (error) {
      fail(error);
    }
  });
}

async function loadColleagues() {
  if (colleagues) return colleagues;
  const me = await api("/api/v1/auth/me");
  const specialties = await api("/api/v1/specialties");
  const mine = specialties.find((s) => s.id === me.specialty_id);
  const all = await api(`/api/v1/specialists?${new URLSearchParams({ specialty: mine ? mine.slug : "" })}`);
  colleagues = all.filter((s) => s.id !== me.id);
  return colleagues;
}

async function transfer(entry) {
  const dialog = $("[data-transfer-dialog]", root);
  const select = $("#transfer-to");
  try {
    const list = await loadColleagues();
    if (!list.length) {
      showAlert(errorBox, t("There is no colleague in your specialty to transfer to."));
      return;
    }
    select.replaceChildren(...list.map((s) => h("option", { value: String(s.id) }, s.display_name)));
  } catch (error) {
    fail(error);
    return;
  }
  dialog.onclose = async () => {
    if (dialog.returnValue !== "transfer") return;
    try {
      await api(`/api/v1/rooms/${entry.appointment_id}/transfer`, { method: "POST", body: { specialist_id: Number(select.value) } });
      await refresh();
    } catch (error) {
      fail(error);
    }
  };
  dialog.showModal();
}

function fail(error) {
  showAlert(errorBox, errorMessage(error));
  errorBox.focus();
}

async function refresh() {
  try {
    snapshot(await api("/api/v1/queue"));
  } catch (error) {
    fail(error);
  }
}

// The line below the heading says whether the list is live; the notice at the top of the
// window (connection-notice.js) stays in sight however far the list is scrolled.
const notice = new ConnectionNotice($("[data-connection-notice]", root), {
  texts: () => ({
    hint: t("The list may not be up to date until then."),
    longHint: t("Please check your internet connection. The list may not be up to date."),
  }),
});
const live = new Signaling({
  as: "staff",
  onMessage: (message) => {
    if (message.type !== "queue") return;
    snapshot(message);
  },
  onStatus: (s) => {
    status.textContent = s === "open" ? t("Live: the list updates by itself.") : t("Connection lost, restoring…");
    status.classList.toggle("lost", s !== "open");
    notice.update(s);
    if (s === "open") refresh();
  },
  onFatal: (reason) => {
    status.textContent = reason === "unauthenticated" ? t("Your session has ended. Please log in again.") : t("Live updates are off. Please reload the page.");
    status.classList.add("lost");
    notice.update("ended");
  },
});

knockState();
refresh();
live.connect();
// Waiting times tick on even without news from the server; a closed call page goes quiet.
setInterval(() => {
  knockState();
  render();
}, 30000);
