"""Accessibility checks with axe-core (the npm package in tests/browser, `npm ci --prefix
tests/browser`) in a page as it is now.

The library is injected with ``page.evaluate``: it travels over the DevTools protocol, which the
page's Content-Security-Policy does not govern, so the page keeps its CSP (no inline
``<script>`` tag, no ``'unsafe-inline'``, nothing loaded from elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from playwright.async_api import Page

from tests.services import require

AXE_JS = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.0, 2.1 and 2.2, levels A and AA.
WCAG_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa")

RUN = """async (tags) => {
  const results = await window.axe.run(document, {
    runOnly: { type: "tag", values: tags },
    resultTypes: ["violations"],
  });
  const nodes = (rule) => rule.nodes.map((node) => ({
    target: node.target.map((part) => Array.isArray(part) ? part.join(" >>> ") : part).join(" "),
    summary: node.failureSummary || "",
    html: node.html,
  }));
  return {
    version: window.axe.version,
    checked: results.passes.length + results.violations.length + results.incomplete.length,
    violations: results.violations.map((rule) => ({
      id: rule.id,
      impact: rule.impact || "",
      help: rule.help,
      url: rule.helpUrl,
      nodes: nodes(rule),
    })),
  };
}"""


@dataclass(frozen=True)
class Violation:
    """One axe rule the page breaks, with every element that breaks it."""

    rule: str
    impact: str
    help: str
    url: str
    nodes: tuple[str, ...]

    def __str__(self) -> str:
        lines = [f"{self.rule} ({self.impact}): {self.help} <{self.url}>"]
        lines += [f"  - {node}" for node in self.nodes]
        return "\n".join(lines)


def require_axe() -> None:
    """axe-core must be installed; outside CI its absence skips, in CI it fails."""
    require(AXE_JS.is_file(), f"axe-core at {AXE_JS} (npm ci --prefix tests/browser)")


@cache
def axe_source() -> str:
    return AXE_JS.read_text(encoding="utf-8")


async def axe_violations(page: Page, tags: tuple[str, ...] = WCAG_TAGS) -> list[Violation]:
    """Runs axe-core on the whole page with the WCAG 2.x A/AA rules; returns the violations."""
    require_axe()
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        # A statement list, so that Playwright evaluates it as a script, not as a function.
        await page.evaluate(f"{axe_source()}\n;undefined")
    result: dict[str, Any] = await page.evaluate(RUN, list(tags))
    if not result["checked"]:
        raise AssertionError(f"axe-core {result['version']} checked no rule on {page.url}")
    return [
        Violation(
            rule=v["id"],
            impact=v["impact"],
            help=v["help"],
            url=v["url"],
            nodes=tuple(
                f"{n['target']}: {' '.join(n['summary'].split())} | {n['html'][:200]}"
                for n in v["nodes"]
            ),
        )
        for v in result["violations"]
    ]


def report(violations: list[Violation]) -> str:
    """The violations as a readable text for an assertion message."""
    return "\n".join(str(v) for v in violations) or "no violations"
