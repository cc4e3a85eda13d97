// The connection check's verdict on the patient's waiting page: one calm sentence (German
// first), an icon that repeats it, what to do when nothing connects, the choice of audio only
// when the line is weak, and the figures only behind "Details".
import { $ } from "./dom.js";
import { t, formatNumber } from "./i18n.js";

/** The sentence for a verdict: "good", "weak", "none", or "unknown" (the check did not finish). */
export function verdictSentence(verdict) {
  if (verdict === "good") return t("Your connection is good for a video call.");
  if (verdict === "weak") return t("Your connection is weak. We recommend: audio only.");
  if (verdict === "none") return t("No connection possible.");
  return t("The connection check did not finish. The consultation may still work.");
}

/** The measured figures in the page's number format ("0,0 %" in German). */
export function checkFigures(result) {
  return t("Connection check: {rtt} round trip, {loss} % packet loss, {rate} kbit/s.", {
    rtt: result.rttMs === null ? "–" : `${formatNumber(Math.round(result.rttMs))} ms`,
    loss: formatNumber(result.packetLossPct, { minimumFractionDigits: 1, maximumFractionDigits: 1 }),
    rate: formatNumber(Math.round(result.bitrateKbps)),
  });
}

/**
 * Fills the verdict box (frontend/templates/join.html, [data-check-result]).
 * @param {HTMLElement} box
 * @param {object|null} result  the check's result, or null when it did not finish
 * @param {object} options
 * @param {boolean} options.choice  offer "audio only (recommended)" / "with video"
 * @param {boolean} options.audioOnly  which of the two is selected now
 * @param {(audioOnly: boolean) => Promise<boolean>} options.onChoice  switches; false if it could not
 * @param {() => void} options.onCheckAgain
 */
export function showVerdict(box, result, { choice = false, audioOnly = false, onChoice, onCheckAgain }) {
  const verdict = result ? result.verdict : "unknown";
  box.hidden = false;
  box.dataset.verdict = verdict;
  for (const icon of box.querySelectorAll("[data-verdict-icon]")) {
    // An <svg> has no `hidden` property: set the attribute.
    icon.toggleAttribute("hidden", icon.dataset.verdictIcon !== verdict);
  }
  $("[data-verdict-text]", box).textContent = verdictSentence(verdict);
  $("[data-verdict-help]", box).hidden = verdict !== "none";
  $("[data-check-again-row]", box).hidden = verdict === "good";
  $("[data-check-again]", box).onclick = onCheckAgain;
  const details = $("[data-verdict-details]", box);
  details.hidden = !result || verdict === "none";
  if (result) $("[data-verdict-figures]", box).textContent = checkFigures(result);
  showChoice($("[data-verdict-choice]", box), choice, audioOnly, onChoice);
}

function showChoice(fieldset, visible, audioOnly, onChoice) {
  fieldset.hidden = !visible;
  const radios = [...fieldset.querySelectorAll("[data-verdict-mode]")];
  const select = (audio) => radios.forEach((r) => (r.checked = (r.value === "audio") === audio));
  select(audioOnly);
  for (const radio of radios) {
    radio.onchange = async () => {
      const wanted = radio.value === "audio";
      radios.forEach((r) => (r.disabled = true));
      const ok = await onChoice(wanted).catch(() => false);
      radios.forEach((r) => (r.disabled = false));
      if (!ok) select(!wanted);
    };
  }
}
