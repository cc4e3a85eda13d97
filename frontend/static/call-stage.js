// The call's stage (call.js): how the remote tiles share it, the call timer, and full screen.
import { clock } from "./waiting-room.js";

/**
 * The number of columns that shows `count` videos of `aspect` largest (fitted without
 * cropping) in a `width` × `height` stage: one column on a portrait phone, side by side on a
 * wide screen, 2 × 2 for three or four on a desktop.
 */
export function bestColumns(count, width, height, aspect = 4 / 3) {
  if (count <= 1 || width <= 0 || height <= 0) return 1;
  let best = 1;
  let bestArea = -1;
  for (let cols = 1; cols <= count; cols += 1) {
    const rows = Math.ceil(count / cols);
    const w = width / cols;
    const hgt = height / rows;
    const fitted = Math.min(w, hgt * aspect);
    const area = fitted * (fitted / aspect);
    if (area > bestArea + 1) {
      best = cols;
      bestArea = area;
    }
  }
  return best;
}

/** Lays the remote tiles out whenever the stage changes size or the tiles change. */
export class StageLayout {
  constructor(stage, grid) {
    this.stage = stage;
    this.grid = grid;
    if (window.ResizeObserver) new ResizeObserver(() => this.update()).observe(stage);
    else window.addEventListener("resize", () => this.update());
  }

  update() {
    const tiles = [...this.grid.children];
    const count = tiles.length;
    if (this.focus(tiles)) return;
    const video = tiles.map((tile) => tile.querySelector("video")).find((v) => v && v.videoWidth > 0);
    const aspect = video ? video.videoWidth / video.videoHeight : 4 / 3;
    const { width, height } = this.stage.getBoundingClientRect();
    const cols = bestColumns(count, width, height, aspect);
    this.grid.dataset.count = String(count);
    this.grid.style.setProperty("--cols", String(cols));
    this.grid.style.setProperty("--rows", String(Math.max(1, Math.ceil(count / cols))));
  }

  /**
   * A tile showing a shared screen gets most of the stage (`data-focus` on the grid, app.css):
   * the others in a column beside it or a row below it, whichever shows the screen larger
   * (beside on a wide stage, below on a phone held upright or a narrow column). Returns
   * whether it did; with one tile the screen has the whole stage anyway.
   */
  focus(tiles) {
    const screen = tiles.length > 1 ? tiles.find((tile) => tile.dataset.screenSharing === "true") : null;
    for (const tile of tiles) tile.classList.toggle("focused", tile === screen);
    if (!screen) {
      delete this.grid.dataset.focus;
      return false;
    }
    const { width, height } = this.stage.getBoundingClientRect();
    const video = screen.querySelector("video");
    const aspect = video?.videoWidth > 0 ? video.videoWidth / video.videoHeight : 16 / 9;
    // The others take about a fifth (app.css): where does the screen come out larger?
    const fitted = (w, hgt) => Math.min(w, hgt * aspect) ** 2 / aspect;
    const side = fitted(width - Math.max(112, width * 0.22), height);
    const below = fitted(width, height - Math.max(80, height * 0.22));
    this.grid.dataset.count = String(tiles.length);
    this.grid.dataset.focus = side > below ? "side" : "below";
    this.grid.style.setProperty("--others", String(tiles.length - 1));
    return true;
  }
}

/**
 * The call's duration since the first remote peer connected; kept in sessionStorage under
 * `key`, so a reload goes on counting.
 */
export class CallTimer {
  constructor(box, output, key) {
    this.box = box;
    this.output = output;
    this.key = key;
    this.interval = null;
    const saved = Number(sessionStorage.getItem(key));
    this.startedAt = Number.isFinite(saved) && saved > 0 ? saved : 0;
  }

  /** Starts counting (once; later calls keep the first start). */
  start() {
    if (!this.startedAt) {
      this.startedAt = Date.now();
      sessionStorage.setItem(this.key, String(this.startedAt));
    }
    if (this.interval) return;
    this.box.hidden = false;
    this.tick();
    this.interval = setInterval(() => this.tick(), 1000);
  }

  tick() {
    this.output.textContent = clock(Math.max(0, Math.floor((Date.now() - this.startedAt) / 1000)));
  }

  /** Stops and forgets the start (the call is over for this page). */
  reset() {
    clearInterval(this.interval);
    this.interval = null;
    this.startedAt = 0;
    this.box.hidden = true;
    sessionStorage.removeItem(this.key);
  }
}

/**
 * Full screen for `target` through the Fullscreen API; where a browser has none for anything
 * but a <video> (iPhone), the target fills the window instead. `button` is a toggle
 * (aria-pressed, see call.js).
 */
export function bindFullscreen(button, target) {
  const doc = document;
  const current = () => doc.fullscreenElement || doc.webkitFullscreenElement || null;
  const active = () => current() === target || target.classList.contains("filled");
  const update = () => button.setAttribute("aria-pressed", String(active()));
  const fill = (on) => {
    target.classList.toggle("filled", on);
    doc.documentElement.classList.toggle("call-filled", on);
    update();
  };
  const exit = () => {
    if (target.classList.contains("filled")) fill(false);
    else if (current()) (doc.exitFullscreen || doc.webkitExitFullscreen).call(doc)?.catch?.(() => {});
  };
  button.addEventListener("click", async () => {
    if (active()) return exit();
    const request = target.requestFullscreen || target.webkitRequestFullscreen;
    if (request && doc.fullscreenEnabled !== false) {
      try {
        await request.call(target);
        return undefined;
      } catch {
        // Refused (an iframe, a policy): fill the window instead.
      }
    }
    return fill(true);
  });
  for (const type of ["fullscreenchange", "webkitfullscreenchange"]) doc.addEventListener(type, update);
  doc.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && target.classList.contains("filled")) fill(false);
  });
  return { exit };
}
