// Camera and microphone: acquire, list, switch, and explain failures in plain words.
import { t } from "./i18n.js";

/** Why getUserMedia failed, as one of a few cases the pages explain differently. */
export function mediaFailure(error) {
  const name = error && error.name;
  if (name === "NotAllowedError" || name === "SecurityError") return "denied";
  if (name === "NotFoundError" || name === "OverconstrainedError" || name === "DevicesNotFoundError") return "missing";
  if (name === "NotReadableError" || name === "TrackStartError" || name === "AbortError") return "busy";
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return "unsupported";
  return "other";
}

export function failureMessage(kind) {
  return {
    denied: t("Access to camera or microphone was blocked. Please allow access in your browser (the camera symbol in the address bar) and try again."),
    missing: t("No camera was found. You can take part with audio only."),
    busy: t("The camera or microphone is being used by another app. Please close it and try again."),
    unsupported: t("This browser cannot make video calls. Please use a current Chrome, Firefox, Edge or Safari."),
    other: t("Camera or microphone could not be started."),
  }[kind];
}

/** A stream with audio and (unless `video` is false) video from the chosen devices. */
export async function getMedia({ audioId = "", videoId = "", video = true } = {}) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw Object.assign(new Error("unsupported"), { name: "NotSupportedError" });
  }
  const audio = audioId ? { deviceId: { exact: audioId } } : true;
  const videoConstraints = video
    ? { ...(videoId ? { deviceId: { exact: videoId } } : {}), width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 24, max: 30 } }
    : false;
  return navigator.mediaDevices.getUserMedia({ audio, video: videoConstraints });
}

/**
 * Audio and video, or audio only when there is no camera. Resolves to {stream, audioOnly};
 * rejects (with the original error) when even audio is impossible.
 */
export async function getMediaWithFallback(options = {}) {
  if (options.video === false) return { stream: await getMedia(options), audioOnly: true };
  try {
    return { stream: await getMedia(options), audioOnly: false };
  } catch (error) {
    if (mediaFailure(error) !== "missing") throw error;
    return { stream: await getMedia({ ...options, video: false }), audioOnly: true };
  }
}

export async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  return {
    cameras: devices.filter((d) => d.kind === "videoinput"),
    microphones: devices.filter((d) => d.kind === "audioinput"),
  };
}

export function stopStream(stream) {
  if (stream) for (const track of stream.getTracks()) track.stop();
}

/** Fills a <select> with devices, keeping `selected` if it is still there. */
export function fillDeviceSelect(select, devices, selected, fallbackLabel) {
  select.replaceChildren();
  devices.forEach((device, index) => {
    const option = document.createElement("option");
    option.value = device.deviceId;
    option.textContent = device.label || `${fallbackLabel} ${index + 1}`;
    option.selected = device.deviceId === selected;
    select.append(option);
  });
  select.disabled = devices.length === 0;
}

/** Drives a level meter (<div class=meter><span>) from the stream's microphone. */
export function levelMeter(stream, bar) {
  const AudioCtx = window.AudioContext || window.webkitAudioContext;
  if (!AudioCtx || stream.getAudioTracks().length === 0) return () => {};
  const context = new AudioCtx();
  const analyser = context.createAnalyser();
  analyser.fftSize = 256;
  context.createMediaStreamSource(stream).connect(analyser);
  const data = new Uint8Array(analyser.frequencyBinCount);
  let frame = 0;
  const draw = () => {
    analyser.getByteTimeDomainData(data);
    let peak = 0;
    for (const value of data) peak = Math.max(peak, Math.abs(value - 128));
    bar.style.width = `${Math.min(100, Math.round((peak / 128) * 250))}%`;
    frame = requestAnimationFrame(draw);
  };
  draw();
  return () => {
    cancelAnimationFrame(frame);
    context.close();
  };
}

/** Plays a <video>; if autoplay with sound is refused, plays muted and offers a button. */
export async function playVideo(video, unmuteButton) {
  try {
    await video.play();
  } catch {
    if (video.muted) return;
    video.muted = true;
    try {
      await video.play();
    } catch {
      return;
    }
    if (unmuteButton) {
      unmuteButton.hidden = false;
      unmuteButton.addEventListener("click", () => {
        video.muted = false;
        video.play();
        unmuteButton.hidden = true;
      }, { once: true });
    }
  }
}
