// The patient's waiting room beyond "please wait": the appointment time, a countdown to it,
// the place in the specialist's line with an estimate of the wait, and the specialist's late
// notice (the websocket's `position` and `delay`, docs/protocol.md). Screen readers hear the countdown only now and
// then (the visible one ticks every second in a role=timer, which is not announced).
import { $ } from "./dom.js";
import { t, formatDate, formatTime } from "./i18n.js";

// Minutes before the appointment at which the remaining time is announced.
const ANNOUNCE_AT = new Set([30, 20, 15, 10, 5, 3, 2, 1]);

/** Whole seconds until `startsAt` (0 or less once it has come). */
export function secondsUntil(startsAt, now = Date.now()) {
  return Math.ceil((new Date(startsAt).getTime() - now) / 1000);
}

/** "4:05" under an hour, "1:04:05" above. */
export function clock(seconds) {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const pad = (n) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
}

/** What a screen reader hears when `minutes` (rounded up) remain, or "" for no announcement. */
export function announcement(previous, minutes) {
  if (previous === null || previous === minutes || !ANNOUNCE_AT.has(minutes)) return "";
  return minutes === 1
    ? t("Your appointment begins in 1 minute.")
    : t("Your appointment begins in {minutes} minutes.", { minutes });
}

export function positionText(ahead) {
  if (ahead === 0) return t("You are next.");
  if (ahead === 1) return t("1 person is ahead of you.");
  return t("{count} people are ahead of you.", { count: ahead });
}

/**
 * The server's estimate (`eta_minutes`, from the specialist's recent consultations) in words,
 * or "" when there is none or when it says nothing the countdown does not: the patient is
 * not seen before the (expected) start anyway, so an estimate shows only when it goes beyond.
 */
export function estimateText(etaMinutes, secondsLeft) {
  if (etaMinutes === null || etaMinutes === undefined || etaMinutes * 60 <= secondsLeft) return "";
  return t("Probably in about {minutes} minutes.", { minutes: etaMinutes });
}

export class WaitingRoom {
  /** `onCallSpecialty`: a consult now that no specialist has taken yet (an on-call request):
   * no appointment time to count down to; the box names the specialty instead. */
  constructor(root, { startsAt, onCallSpecialty = null, now = () => Date.now() }) {
    this.startsAt = startsAt;
    this.onCallSpecialty = onCallSpecialty;
    this.now = now;
    this.lastMinutes = null;
    this.arrived = false;
    this.lateMinutes = 0; // the specialist's late notice: the countdown runs to the later time
    this.timer = null;
    this.el = {
      label: $("[data-appointment-label]", root),
      time: $("[data-appointment-time]", root),
      countdown: $("[data-countdown]", root),
      live: $("[data-countdown-live]", root),
      position: $("[data-position]", root),
      delay: $("[data-delay]", root),
      delayText: $("[data-delay-text]", root),
      delayNote: $("[data-delay-note]", root),
      delayExpected: $("[data-delay-expected]", root),
    };
  }

  start() {
    if (this.onCallSpecialty) return this.startOnCall();
    const today = formatDate(new Date(this.now())) === formatDate(this.startsAt);
    this.el.time.textContent = today
      ? t("today at {time}", { time: formatTime(this.startsAt) })
      : t("{date} at {time}", { date: formatDate(this.startsAt), time: formatTime(this.startsAt) });
    this.tick();
    clearInterval(this.timer);
    this.timer = setInterval(() => this.tick(), 1000);
  }

  startOnCall() {
    const { label, time, countdown } = this.el;
    label.textContent = t("Your video consultation");
    time.textContent = this.onCallSpecialty;
    countdown.removeAttribute("role"); // nothing counts down
    countdown.dataset.state = "on-call";
    countdown.textContent = t("A specialist in {specialty} will take over shortly and let you in here.", {
      specialty: this.onCallSpecialty,
    });
  }

  /** An on-call request was taken (join.js learns by whom from the patient's details): the
   * box says so, and the live region tells a screen reader. */
  taken(name) {
    if (!this.onCallSpecialty) return;
    const text = t("Your request has been taken: {name} will let you in here shortly.", { name });
    this.el.countdown.textContent = text;
    this.el.countdown.dataset.state = "taken";
    this.el.live.textContent = text;
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }

  /** When the consultation will probably begin: the slot, plus the late notice's minutes. */
  expectedStart() {
    return new Date(new Date(this.startsAt).getTime() + this.lateMinutes * 60000);
  }

  tick() {
    if (this.onCallSpecialty) return;
    const left = secondsUntil(this.expectedStart(), this.now());
    const { countdown, live } = this.el;
    if (left > 0) {
      countdown.textContent = this.lateMinutes
        ? t("Probably begins in {time}", { time: clock(left) })
        : t("Starts in {time}", { time: clock(left) });
      countdown.dataset.state = "before";
      const minutes = Math.ceil(left / 60);
      const said = announcement(this.lastMinutes, minutes);
      if (said) live.textContent = said;
      this.lastMinutes = minutes;
      return;
    }
    const text = t("Your appointment time has come. The doctor will let you in.");
    if (countdown.textContent !== text) countdown.textContent = text;
    countdown.dataset.state = "due";
    // Announced once, if the time came while the patient was here (otherwise it is on screen).
    if (!this.arrived && this.lastMinutes !== null) live.textContent = text;
    this.arrived = true;
  }

  /** The websocket's `position`: how many waiting patients come first, and about how long. */
  position(ahead, etaMinutes = null) {
    const el = this.el.position;
    el.hidden = false;
    const left = Math.max(0, secondsUntil(this.expectedStart(), this.now()));
    el.textContent = [positionText(ahead), estimateText(etaMinutes, left)].filter(Boolean).join(" ");
    el.dataset.ahead = String(ahead);
  }

  /** The websocket's `delay`; minutes and note both null: withdrawn. */
  delay(message) {
    const { delay, delayText, delayNote, delayExpected } = this.el;
    const withdrawn = message.minutes === null && message.note === null;
    delay.hidden = withdrawn;
    this.lateMinutes = message.minutes || 0;
    this.arrived = false;
    this.lastMinutes = null; // no announcement for the jump itself
    this.tick();
    if (withdrawn) return;
    const name = message.specialist_name || t("The doctor");
    delayText.textContent = message.minutes
      ? t("{name} is running about {minutes} minutes late.", { name, minutes: message.minutes })
      : t("A message from {name}:", { name });
    delayNote.hidden = !message.note;
    delayNote.textContent = message.note || "";
    delayExpected.hidden = !message.minutes;
    if (message.minutes) {
      delayExpected.textContent = t("Your consultation will probably begin at about {time}.", {
        time: formatTime(this.expectedStart()),
      });
    }
  }
}
