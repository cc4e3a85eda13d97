// Tiny DOM helpers: build elements without innerHTML, so user data can never become markup.

/** h("li", {class: "x", dataset: {id: 1}, onclick}, "text", child) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

/** Shows `text` in an alert element (role=alert announces it); empty text hides it. */
export function showAlert(el, text, kind = "error") {
  el.textContent = text || "";
  el.hidden = !text;
  el.classList.remove("error", "success", "info", "warning");
  el.classList.add(kind);
}

/** Shows exactly one of the [data-step] sections of `root` and moves focus to its heading. */
export function showStep(root, name, { focus = true } = {}) {
  for (const section of root.querySelectorAll("[data-step]")) {
    section.hidden = section.dataset.step !== name;
  }
  const current = root.querySelector(`[data-step="${name}"]`);
  if (focus && current) {
    const heading = current.querySelector("h1, h2");
    if (heading) {
      heading.tabIndex = -1;
      heading.focus();
    }
  }
  return current;
}

/** Disables a button while `work` runs (no double submissions on slow networks). */
export async function busy(button, work) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}
