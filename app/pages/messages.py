"""Message extraction for the page catalogs: ``python -m app.pages.messages update``.

Collects every ``_("...")`` in templates, ``t("...")`` in page scripts and ``N_("...")`` in
``app/pages`` and merges them into ``locale/<lang>/LC_MESSAGES/messages.po``: existing
translations are kept, new ids are added untranslated, vanished ids are dropped.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import write_po

from app.pages.i18n import LOCALE_DIR, read_catalog
from app.pages.templating import STATIC, TEMPLATES

SOURCES: list[tuple[Path, list[tuple[str, str]], dict[str, None]]] = [
    (TEMPLATES, [("**.html", "jinja2.ext:babel_extract")], {"_": None}),
    (STATIC, [("**.js", "javascript")], {"t": None}),
    (Path(__file__).parent, [("*.py", "python")], {"N_": None}),
]
OPTIONS = {
    "**.html": {"silent": "false", "trimmed": "true"},
    # t() inside a template string's ${...} is a message too.
    "**.js": {"parse_template_string": "true"},
}
TRANSLATED = ("de",)


def extract() -> dict[str, list[tuple[str, int]]]:
    """Every message id and where it is used."""
    found: dict[str, list[tuple[str, int]]] = {}
    for directory, method_map, keywords in SOURCES:
        for filename, lineno, message, _comments, _context in extract_from_dir(
            str(directory), method_map, options_map=OPTIONS, keywords=keywords
        ):
            if isinstance(message, str) and message:
                found.setdefault(message, []).append((str(directory / filename), lineno))
    return found


def untranslated(lang: str) -> Iterator[str]:
    catalog = read_catalog(lang)
    done = {m.id for m in catalog if m.id and m.string} if catalog else set()
    for message in sorted(extract()):
        if message not in done:
            yield message


def update(lang: str) -> Catalog:
    old = read_catalog(lang)
    previous = {m.id: m.string for m in old if m.id} if old else {}
    catalog = Catalog(locale=lang, project="Konsil", fuzzy=False)
    for message, locations in sorted(extract().items()):
        catalog.add(message, previous.get(message, ""), locations=locations)
    path = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        write_po(f, catalog, omit_header=False, no_location=True, width=100)
    return catalog


def main(argv: list[str]) -> int:
    if argv[:1] == ["update"]:
        for lang in TRANSLATED:
            update(lang)
    missing = {lang: list(untranslated(lang)) for lang in TRANSLATED}
    for lang, messages in missing.items():
        for message in messages:
            print(f"{lang}: untranslated: {message}")
    return 1 if any(missing.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
