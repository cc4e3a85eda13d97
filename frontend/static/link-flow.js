// The flow the patient's page (join.js) and the invited guest's page (guest.js) share around
// their own steps: redeem the link (token from the URL fragment, removed at once) or read the
// session a reload keeps, the link problems, going straight back to the waiting room after a
// reload, and the ended page. Each page passes its own endpoints and texts.
import { api, setCsrfToken, ApiError, errorMessage } from "./api.js";
import { $, showStep, showAlert } from "./dom.js";
import { t, formatDate, formatTime } from "./i18n.js";
import { getMedia, mediaFailure } from "./media.js";
import { prefs } from "./devices-step.js";

export class LinkFlow {
  /**
   * root: the page's element with the steps of _join_steps.html and the ended step;
   * redeemUrl, meUrl: the link kind's session endpoints; readyKey(id): the sessionStorage key
   * that remembers the devices step ("audio" or "video") until the consultation is closed;
   * texts(): the page's own texts, { expired(reason), used (a guest link only),
   * notAuthenticated, ended: { reason: text } beside those for left, closed and replaced };
   * autoRetry: a link that opens within the hour is tried again by itself when it opens.
   */
  constructor(root, { redeemUrl, meUrl, readyKey, texts, autoRetry = false }) {
    Object.assign(this, { root, redeemUrl, meUrl, readyKey, texts, autoRetry });
    this.pendingToken = null;
    // The token must not stay in the address bar, the history or a bookmark.
    this.fragment = location.hash.slice(1);
    if (this.fragment) history.replaceState(null, "", location.pathname + location.search);
  }

  /** The link's summary (with its CSRF token set), or null when the link problem is shown. */
  async open() {
    showStep(this.root, "loading", { focus: false });
    let summary;
    try {
      if (this.fragment) {
        this.pendingToken = this.fragment;
        summary = await api(this.redeemUrl, { method: "POST", body: { token: this.fragment } });
      } else {
        summary = await api(this.meUrl);
      }
    } catch (error) {
      this.problem(error);
      return null;
    }
    this.pendingToken = null;
    setCsrfToken(summary.csrf_token);
    this.id = summary.appointment_id;
    return summary;
  }

  /** The consent step: `summary` into the element `summarySelector`, then `onAgreed` once the box is ticked. */
  consent(summarySelector, summary, onAgreed) {
    const root = this.root;
    $(summarySelector, root).textContent = summary;
    const form = $("[data-consent-form]", root);
    const alertBox = $("[data-consent-error]", root);
    form.onsubmit = (event) => {
      event.preventDefault();
      if (!form.consent.checked) {
        showAlert(alertBox, t("Please confirm that you agree, so that the consultation can start."));
        form.consent.setAttribute("aria-invalid", "true");
        form.consent.focus();
        return;
      }
      onAgreed();
    };
    showStep(root, "consent");
  }

  /** "audio" or "video" when the devices step was done before a reload, else null. */
  get ready() {
    return sessionStorage.getItem(this.readyKey(this.id));
  }

  set ready(mode) {
    sessionStorage.setItem(this.readyKey(this.id), mode);
  }

  /** After a reload: the devices chosen before, straight to `onStream`; `onFail` if they are gone. */
  async resume(onStream, onFail) {
    const audioOnly = this.ready === "audio";
    try {
      const stream = await getMedia({ audioId: prefs.audioId, videoId: prefs.videoId, video: !audioOnly })
        .catch((error) => (mediaFailure(error) === "missing" ? getMedia({ audioId: prefs.audioId, video: false }) : Promise.reject(error)));
      return onStream(stream);
    } catch {
      return onFail();
    }
  }

  problem(error) {
    const root = this.root;
    const texts = this.texts();
    const title = $("[data-problem-title]", root);
    const text = $("[data-problem-text]", root);
    const when = $("[data-problem-when]", root);
    const retry = $("[data-retry]", root);
    when.hidden = true;
    retry.hidden = true;
    const code = error instanceof ApiError ? error.code : "offline";
    if (code === "link_not_yet_valid") {
      title.textContent = t("Your link is not open yet");
      text.textContent = t("You can join 30 minutes before your appointment.");
      const opens = error.detail.valid_from;
      if (opens) {
        when.hidden = false;
        when.textContent = t("The link opens on {date} at {time}.", { date: formatDate(opens), time: formatTime(opens) });
        const wait = new Date(opens).getTime() - Date.now();
        if (this.autoRetry && this.pendingToken && wait < 3600 * 1000) setTimeout(() => this.retry(), Math.max(wait, 0) + 2000);
      }
      retry.hidden = !this.pendingToken;
    } else if (code === "link_expired") {
      title.textContent = error.detail.reason === "cancelled" ? t("This appointment was cancelled") : t("This link has expired");
      text.textContent = texts.expired(error.detail.reason);
    } else if (code === "link_used" && texts.used) {
      title.textContent = t("This link has already been used");
      text.textContent = texts.used;
    } else if (code === "link_invalid") {
      title.textContent = t("This link is not valid");
      text.textContent = t("Please check that you opened the complete link from your invitation. It may also have been replaced by a newer link.");
    } else if (code === "not_authenticated") {
      title.textContent = t("Please open your invitation link");
      text.textContent = texts.notAuthenticated;
    } else {
      title.textContent = t("Something went wrong");
      text.textContent = errorMessage(error);
      retry.hidden = !(this.pendingToken || code === "offline" || code.startsWith("http_5"));
    }
    retry.onclick = () => this.retry();
    showStep(root, "problem");
  }

  /** Loads the page again, with the token back in the fragment if it was not redeemed. */
  retry() {
    if (this.pendingToken) history.replaceState(null, "", `${location.pathname}${location.search}#${this.pendingToken}`);
    location.reload();
  }

  /** The ended page: why, and "Join again" where that helps. */
  ended(reason) {
    const root = this.root;
    const messages = {
      left: t("You have left the consultation. If this was a mistake, you can join again."),
      closed: t("The doctor has ended the consultation. Thank you! You can close this page now."),
      replaced: t("You opened the consultation in another window or tab. Please continue there."),
      ...this.texts().ended,
    };
    $("[data-ended-text]", root).textContent = messages[reason] || errorMessage(new ApiError(0, "room_closed"));
    const rejoin = $("[data-rejoin]", root);
    rejoin.hidden = !(reason === "left" || reason === "replaced");
    rejoin.onclick = () => location.reload();
    if (reason === "closed") sessionStorage.removeItem(this.readyKey(this.id));
    root.classList.remove("in-call");
    showStep(root, "ended");
  }
}
