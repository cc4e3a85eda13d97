// RTCRtpSender.setParameters one change at a time per sender. Two writers change a video
// sender's parameters (call-quality.js: the step's bitrate, resolution and frame rate;
// call-share.js: keep the resolution of a shared screen); a change made from a stale
// getParameters() is refused ("InvalidModificationError") or undoes the other's. Here each
// change reads the parameters when its turn comes.

const queues = new WeakMap();

/**
 * Applies `change(parameters)` to the sender's current parameters after every change queued
 * before it. Resolves to whether it was applied: false before the first negotiation (no
 * encodings yet), when `change` returns false (nothing to do) or when the browser refuses.
 */
export function updateParameters(sender, change) {
  const previous = queues.get(sender) || Promise.resolve();
  const next = previous.then(async () => {
    if (!sender.getParameters || !sender.setParameters) return false;
    const parameters = sender.getParameters();
    if (!parameters.encodings?.length) return false;
    if (change(parameters) === false) return false;
    await sender.setParameters(parameters);
    return true;
  }).catch(() => false);
  queues.set(sender, next);
  return next;
}
