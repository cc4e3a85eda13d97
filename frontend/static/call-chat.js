// The call's chat log (call.js). The lines survive a reload of the tab: they are kept in this
// tab's sessionStorage, per appointment, and deleted when the person leaves or the
// consultation ends. The server relays chat and never stores it (docs/protocol.md).
import { h } from "./dom.js";
import { t, formatTime } from "./i18n.js";

const KEEP = 200;

export class ChatLog {
  constructor(list, key) {
    this.list = list;
    this.key = key;
    this.lines = [];
    try {
      const saved = JSON.parse(sessionStorage.getItem(key) || "[]");
      if (Array.isArray(saved)) this.lines = saved.filter((l) => l && typeof l.text === "string").slice(-KEEP);
    } catch {
      this.lines = [];
    }
    for (const line of this.lines) this.render(line);
  }

  /** A chat line: `mine` for the person's own, `from` the sender's name otherwise. */
  add({ from = "", text, at, mine = false }) {
    const line = { from, text, at: at || new Date().toISOString(), mine };
    this.lines.push(line);
    this.lines = this.lines.slice(-KEEP);
    this.save();
    this.render(line);
  }

  /** A notice from the page itself (not kept: it belongs to this moment). */
  notice(text) {
    this.render({ from: t("Notice"), text, at: new Date().toISOString(), mine: false });
  }

  render(line) {
    const from = line.mine ? t("You") : line.from || t("Participant");
    const item = h("li", { class: line.mine ? "mine" : "" },
      h("span", { class: "from" }, `${from} (${formatTime(line.at)}): `), h("span", { class: "text" }, line.text));
    this.list.append(item);
    this.list.scrollTop = this.list.scrollHeight;
  }

  save() {
    try {
      sessionStorage.setItem(this.key, JSON.stringify(this.lines));
    } catch {
      // Storage full or off (private mode): the chat still works, only not across a reload.
    }
  }

  /** Forgets the lines (leave, end); what is on screen stays until the page changes. */
  clear() {
    this.lines = [];
    sessionStorage.removeItem(this.key);
  }
}
