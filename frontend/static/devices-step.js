// The camera and microphone step of the patient's page (join.js) and the invited guest's page
// (guest.js), markup in templates/_join_steps.html: a preview of the chosen camera, the device
// lists, the level meter, what went wrong (no camera, access denied…) and the choice between
// video and audio only. The choice is remembered for the next visit ("konsil.devices").
import { $, showAlert } from "./dom.js";
import { t } from "./i18n.js";
import {
  getMedia, listDevices, fillDeviceSelect, levelMeter, mediaFailure, failureMessage, stopStream, playVideo,
} from "./media.js";

/** The remembered devices: { videoId, audioId, audioOnly }. */
export const prefs = JSON.parse(localStorage.getItem("konsil.devices") || "{}");

let root = null;
let preview = null;
let previewReady = Promise.resolve();
let stopMeter = () => {};

/**
 * Runs the step (already shown) inside `root` with the remembered devices. When the person
 * continues, `onChosen(stream, audioOnly)` gets the preview's stream (without video for audio
 * only) and its result is the click's.
 */
export async function devicesStep(page, onChosen) {
  root = page;
  const cameraSelect = $("[data-camera-select]", root);
  const micSelect = $("[data-mic-select]", root);
  const reopen = (choice) => {
    previewReady = openPreview(choice);
    return previewReady;
  };
  cameraSelect.onchange = () => reopen({ videoId: cameraSelect.value, audioId: micSelect.value });
  micSelect.onchange = () => reopen({ videoId: cameraSelect.value, audioId: micSelect.value });
  $("[data-retry-media]", root).onclick = () => reopen(prefs);
  $("[data-devices-ok]", root).onclick = () => devicesChosen(false, onChosen);
  $("[data-audio-only-choice]", root).onclick = () => devicesChosen(true, onChosen);
  await reopen(prefs);
}

async function openPreview(choice) {
  const errorBox = $("[data-media-error]", root);
  const video = $("[data-preview]", root);
  const okButton = $("[data-devices-ok]", root);
  stopMeter();
  stopStream(preview);
  preview = null;
  showAlert(errorBox, "");
  $("[data-retry-media]", root).hidden = true;
  try {
    preview = await getMedia({ videoId: choice.videoId || "", audioId: choice.audioId || "" });
  } catch (error) {
    const kind = mediaFailure(error);
    if (kind === "missing") {
      try {
        preview = await getMedia({ audioId: choice.audioId || "", video: false });
      } catch (audioError) {
        return mediaProblem(mediaFailure(audioError));
      }
      showAlert(errorBox, failureMessage("missing"), "warning");
    } else {
      return mediaProblem(kind);
    }
  }
  const hasVideo = preview.getVideoTracks().length > 0;
  video.srcObject = hasVideo ? preview : null;
  video.hidden = !hasVideo;
  $("[data-preview-placeholder]", root).hidden = hasVideo;
  okButton.hidden = !hasVideo;
  if (hasVideo) playVideo(video);
  stopMeter = levelMeter(preview, $("[data-meter]", root));
  const found = await listDevices();
  const current = (kind) => preview.getTracks().find((tr) => tr.kind === kind)?.getSettings().deviceId;
  fillDeviceSelect($("[data-camera-select]", root), found.cameras, current("video"), t("Camera"));
  fillDeviceSelect($("[data-mic-select]", root), found.microphones, current("audio"), t("Microphone"));
  return undefined;
}

function mediaProblem(kind) {
  const errorBox = $("[data-media-error]", root);
  showAlert(errorBox, failureMessage(kind));
  $("[data-retry-media]", root).hidden = false;
  $("[data-devices-ok]", root).hidden = true;
  $("[data-preview]", root).hidden = true;
  // Without any microphone there is no consultation; audio-only needs the microphone too.
  $("[data-audio-only-choice]", root).hidden = kind === "denied" || kind === "unsupported";
  errorBox.focus?.();
}

async function devicesChosen(audioOnly, onChosen) {
  // A quick tap may come before the camera has started: wait for it, not for nothing.
  await previewReady;
  stopMeter();
  const cameraSelect = $("[data-camera-select]", root);
  const micSelect = $("[data-mic-select]", root);
  Object.assign(prefs, { videoId: cameraSelect.value || "", audioId: micSelect.value || "", audioOnly });
  localStorage.setItem("konsil.devices", JSON.stringify(prefs));
  if (!preview) {
    try {
      preview = await getMedia({ audioId: prefs.audioId, video: false });
    } catch (error) {
      return mediaProblem(mediaFailure(error));
    }
  }
  if (audioOnly) {
    for (const track of preview.getVideoTracks()) {
      track.stop();
      preview.removeTrack(track);
    }
  }
  return onChosen(preview, audioOnly);
}
