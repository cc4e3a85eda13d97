"""Writes a scenario's measured figures into docs/reliability.md.

Only when ``KONSIL_CHAOS_REPORT`` names the file (``make chaos`` does): a targeted run of one
test leaves the document alone. Each scenario owns the text between its two markers
``<!-- chaos:NAME -->`` and ``<!-- /chaos:NAME -->``; it is written before the scenario's
assertions, so a fault that did not survive is recorded too.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

from tests.live import ROOT


def write_section(name: str, lines: list[str], by: str = "make chaos") -> None:
    """``by``: what wrote it (a browser test that measures a fault names its own file)."""
    target = os.environ.get("KONSIL_CHAOS_REPORT")
    if not target:
        return
    path = Path(target) if Path(target).is_absolute() else ROOT / target
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = "\n".join([f"_Measured by `{by}` on {stamp}._", "", *lines])
    start, end = f"<!-- chaos:{name} -->", f"<!-- /chaos:{name} -->"
    text = path.read_text()
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"{path} has no markers {start} ... {end}")
    path.write_text(pattern.sub(lambda _: f"{start}\n{body}\n{end}", text))


def seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f} s"
