"""Every message a page script passes to t() reaches the catalogs: none hides from the
extraction inside another t() call's arguments or inside a template string's ${...}."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from app.pages import messages
from app.pages.templating import STATIC

# t("..."): a double-quoted string literal as the first argument (the scripts' only style).
T_CALL = re.compile(r'\bt\(\s*("(?:[^"\\\n]|\\.)*")')


def test_every_t_call_in_the_page_scripts_is_extracted() -> None:
    found = messages.extract()
    missed = []
    calls = 0
    for path in sorted(STATIC.glob("*.js")):
        source = path.read_text(encoding="utf-8")
        for match in T_CALL.finditer(source):
            calls += 1
            message = json.loads(match.group(1))
            if message not in found:
                line = source.count("\n", 0, match.start()) + 1
                missed.append(f"{path.name}:{line}: {message}")
    assert calls > 100
    assert missed == []


def test_a_t_call_inside_a_template_string_is_extracted() -> None:
    # gp-book.js builds the sending note in a template string.
    assert "The booking shows whether it arrived." in messages.extract()


def test_a_t_call_inside_a_template_string_counts_for_the_patients_languages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Turkish, Arabic, Ukrainian and Polish must translate it as much as any other message of
    # the patient's pages.
    script = tmp_path / "patient.js"
    script.write_text('el.textContent = `${t("Plain")} ${t("Inside a template string")}`;\n')
    monkeypatch.setattr(messages, "patient_files", lambda: [script])
    assert set(messages.patient_messages()) == {"Plain", "Inside a template string"}
