"""The documents certifiers and operators read point at things that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CITED = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


def test_every_test_the_compliance_document_cites_exists() -> None:
    text = (ROOT / "docs" / "compliance.md").read_text()
    cited = set(CITED.findall(text))
    assert len(cited) > 20
    missing = [
        f"{path}::{name}"
        for path, name in sorted(cited)
        if not (ROOT / path).is_file()
        or not re.search(rf"^(async )?def {name}\(", (ROOT / path).read_text(), re.M)
    ]
    assert missing == []
