"""The notice at the top of a page while its websocket is being restored
(frontend/static/connection-notice.js), run by Node.js with a fake clock and a fake DOM: a drop
too short to matter shows nothing; a longer one shows the loss with the page's hint, then the
advice once it lasts past the resume window, then "restored", which goes by itself; a flapping
line does not flicker; the end of the page's connection takes the notice away for good. The
same in real Chromium against the real server: tests/browser/test_connection_notice.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.frontend.node import fake_timers, run_modules

# The fake clock (tests/frontend/node.py), and just enough DOM for dom.js's h() and i18n.js
# (English: no catalog to fetch).
PRELUDE = (
    fake_timers(0)
    + """
class Node {}
class Text extends Node {
  constructor(text) { super(); this.textContent = text; }
}
class Element extends Node {
  constructor(tag) {
    super();
    this.tag = tag;
    this.children = [];
    this.attributes = {};
    this.dataset = {};
    this.className = "";
  }
  setAttribute(name, value) { this.attributes[name] = value; }
  addEventListener() {}
  append(...nodes) { this.children.push(...nodes); }
  replaceChildren(...nodes) { this.children = nodes; }
  get textContent() {
    return this.children.map((c) => c.textContent).filter(Boolean).join(" | ");
  }
}
globalThis.Node = Node;
globalThis.document = {
  documentElement: { lang: "en", dir: "ltr", dataset: {} },
  createElement: (tag) => new Element(tag),
  createTextNode: (text) => new Text(text),
};

const { ConnectionNotice, SHOW_AFTER_MS, BACK_MS } = await import("./connection-notice.js");
const region = new Element("div");
let where = "waiting room";
const notice = new ConnectionNotice(region, {
  longAfter: () => 30,
  texts: () => ({ hint: `Nothing to do (${where}).`, longHint: "Check your line." }),
});
/** What the region shows now: its state and its words. */
const seen = () => ({
  state: region.dataset.state || "quiet",
  text: region.textContent,
  kind: region.children[0]?.className || "",
});
"""
)


def run(script: str, tmp_path: Path) -> Any:
    """Runs ``script`` after PRELUDE in Node.js; what it prints (JSON) comes back."""
    return run_modules(("connection-notice.js", "dom.js", "i18n.js"), PRELUDE + script, tmp_path)


def test_connection_notice_says_nothing_about_a_drop_that_is_over_at_once(
    tmp_path: Path,
) -> None:
    result = run(
        """
        const steps = [];
        notice.update("connecting"); steps.push(seen());     // the first connection
        notice.update("open"); steps.push(seen());
        notice.update("reconnecting");
        advance(SHOW_AFTER_MS - 1); steps.push(seen());       // a server restart, resumed at once
        notice.update("open"); steps.push(seen());
        advance(60_000); steps.push(seen());
        console.log(JSON.stringify(steps));
        """,
        tmp_path,
    )
    assert [step["state"] for step in result] == ["quiet"] * 5
    assert [step["text"] for step in result] == [""] * 5


def test_connection_notice_shows_the_loss_the_advice_and_the_return_then_goes(
    tmp_path: Path,
) -> None:
    result = run(
        """
        const steps = [];
        notice.update("open");
        notice.update("reconnecting");
        advance(SHOW_AFTER_MS); steps.push(seen());
        // Each new attempt says "reconnecting" again: the advice still comes 30 s after the loss.
        for (let i = 0; i < 5; i += 1) { advance(5_000); notice.update("reconnecting"); }
        steps.push(seen());
        advance(30_000 - SHOW_AFTER_MS - 25_000); steps.push(seen());
        notice.update("open"); steps.push(seen());
        advance(BACK_MS - 1); steps.push(seen());
        advance(1); steps.push(seen());
        console.log(JSON.stringify(steps));
        """,
        tmp_path,
    )
    lost, still_lost, long, back, still_back, gone = result
    assert lost["state"] == "lost"
    assert lost["text"] == "Connection lost, restoring… | Nothing to do (waiting room)."
    assert lost["kind"] == "connection-box lost"
    assert still_lost["state"] == "lost"
    assert long["state"] == "long"
    assert long["text"] == "The connection has not come back yet. | Check your line."
    assert back["state"] == "back"
    assert back["text"] == "Connection restored."
    assert back["kind"] == "connection-box back"
    assert still_back["state"] == "back"
    assert gone == {"state": "quiet", "text": "", "kind": ""}


def test_connection_notice_reads_the_pages_words_when_it_shows_them(tmp_path: Path) -> None:
    result = run(
        """
        notice.update("open");
        where = "call";
        notice.update("reconnecting");
        advance(SHOW_AFTER_MS);
        console.log(JSON.stringify(seen()));
        """,
        tmp_path,
    )
    assert result["text"] == "Connection lost, restoring… | Nothing to do (call)."


def test_connection_notice_does_not_flicker_on_a_flapping_line(tmp_path: Path) -> None:
    result = run(
        """
        const steps = [];
        notice.update("open");
        notice.update("reconnecting");
        advance(SHOW_AFTER_MS);
        notice.update("open"); steps.push(seen());
        notice.update("open"); steps.push(seen());            // a confirmation: still "restored"
        advance(1_000);
        notice.update("reconnecting"); steps.push(seen());    // lost again: at once, no gap
        advance(BACK_MS); steps.push(seen());                 // "restored" left nothing behind
        console.log(JSON.stringify(steps));
        """,
        tmp_path,
    )
    assert [step["state"] for step in result] == ["back", "back", "lost", "lost"]


def test_connection_notice_goes_for_good_when_the_connection_ends(tmp_path: Path) -> None:
    result = run(
        """
        const steps = [];
        notice.update("open");
        notice.update("reconnecting");
        advance(SHOW_AFTER_MS); steps.push(seen());
        notice.update("ended"); steps.push(seen());
        notice.update("reconnecting");
        advance(60_000); steps.push(seen());
        console.log(JSON.stringify({ steps, timers: timers.size }));
        """,
        tmp_path,
    )
    assert [step["state"] for step in result["steps"]] == ["lost", "quiet", "quiet"]
    assert [step["text"] for step in result["steps"][1:]] == ["", ""]
    assert result["timers"] == 0
