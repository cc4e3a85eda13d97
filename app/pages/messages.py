"""Message extraction for the page catalogs: ``python -m app.pages.messages [update]``.

Collects every ``_("...")`` in templates, ``t("...")`` in page scripts and ``N_("...")`` in
``app/pages``. German translates all of them; the patients' other languages (Turkish,
Arabic, Ukrainian, Polish) translate the messages of the patient's pages, found by following
``i18n.PATIENT_TEMPLATES``: what they extend and include, the scripts they load and every
module those scripts import (also ``import("./x.js")``), plus ``N_()`` in ``PATIENT_PYTHON``.

Without arguments it lists what each catalog lacks (with where it is used) and exits 1 if
anything does. ``update`` merges the ids into ``locale/<lang>/LC_MESSAGES/messages.po``:
existing translations are kept, new ids are added untranslated, vanished ids are dropped.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir, extract_from_file
from babel.messages.pofile import write_po
from jinja2 import Environment, FileSystemLoader, meta

from app.pages.i18n import (
    LOCALE_DIR,
    PATIENT_LANGUAGES,
    PATIENT_TEMPLATES,
    STAFF_LANGUAGES,
    read_catalog,
)
from app.pages.templating import STATIC, TEMPLATES

PAGES_DIR = Path(__file__).parent
SOURCES: list[tuple[Path, list[tuple[str, str]], dict[str, None]]] = [
    (TEMPLATES, [("**.html", "jinja2.ext:babel_extract")], {"_": None}),
    (STATIC, [("**.js", "javascript")], {"t": None}),
    (PAGES_DIR, [("*.py", "python")], {"N_": None}),
]
OPTIONS = {
    "**.html": {"silent": "false", "trimmed": "true"},
    # t() inside a template string's ${...} is a message too.
    "**.js": {"parse_template_string": "true"},
}
# Every message; the patients' other languages translate the patient pages' messages only.
TRANSLATED = ("de",)
PATIENT_ONLY = tuple(lang for lang in PATIENT_LANGUAGES if lang not in STAFF_LANGUAGES)
# Modules whose N_() messages appear on patient pages: the error page's titles and texts, the
# note about a language a page does not offer.
PATIENT_PYTHON = ("errors.py", "i18n.py")

Found = dict[str, list[tuple[str, int]]]
SCRIPT_IN_TEMPLATE = re.compile(r"""static\(\s*["']([\w./-]+\.js)["']\s*\)""")
# import … from "./x.js", export … from "./x.js", import "./x.js", import("./x.js")
IMPORT = re.compile(r"""(?:\bfrom|\bimport)\s*\(?\s*["'](\.\.?/[\w./-]+\.js)["']""")
PLACEHOLDER = re.compile(r"\{(\w+)\}|%\((\w+)\)s")
# A script's translation may choose words by a number (frontend/static/i18n.js reads it):
# "{minutes, plural, one {# minutę} few {# minuty} many {# minut} other {# minuty}}".
_NAME = r"(?:=\d+|zero|one|two|few|many|other)"
_TEXT = r"[^{}]*(?:\{\w+\}[^{}]*)*"
PLURAL_FORM = re.compile(rf"({_NAME})\s*\{{({_TEXT})\}}")
PLURAL = re.compile(rf"\{{(\w+), plural,((?:\s*{_NAME}\s*\{{{_TEXT}\}})+)\s*\}}")


def extract() -> Found:
    """Every message id and where it is used."""
    found: Found = {}
    for directory, method_map, keywords in SOURCES:
        for filename, lineno, message, _comments, _context in extract_from_dir(
            str(directory), method_map, options_map=OPTIONS, keywords=keywords
        ):
            if isinstance(message, str) and message:
                found.setdefault(message, []).append((str(directory / filename), lineno))
    return found


def patient_templates() -> list[str]:
    """``PATIENT_TEMPLATES`` and every template they extend or include."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True)
    seen: list[str] = []
    todo = list(PATIENT_TEMPLATES)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.append(name)
        source = (TEMPLATES / name).read_text(encoding="utf-8")
        todo.extend(n for n in meta.find_referenced_templates(env.parse(source)) if n)
    return sorted(seen)


def patient_scripts(templates: list[str]) -> list[str]:
    """The scripts the templates load, with every module they import (relative paths)."""
    seen: list[str] = []
    todo = [
        name
        for template in templates
        for name in SCRIPT_IN_TEMPLATE.findall((TEMPLATES / template).read_text(encoding="utf-8"))
    ]
    while todo:
        name = todo.pop()
        if name in seen or not (STATIC / name).is_file():
            continue
        seen.append(name)
        here = (STATIC / name).parent
        for target in IMPORT.findall((STATIC / name).read_text(encoding="utf-8")):
            todo.append((here / target).resolve().relative_to(STATIC.resolve()).as_posix())
    return sorted(seen)


def patient_files() -> list[Path]:
    """The templates, scripts and modules that make up the patient's pages."""
    templates = patient_templates()
    return [
        *(TEMPLATES / name for name in templates),
        *(STATIC / name for name in patient_scripts(templates)),
        *(PAGES_DIR / name for name in PATIENT_PYTHON),
    ]


def patient_messages() -> Found:
    """Every message a patient page can show, and where it is used."""
    found: Found = {}
    for path in patient_files():
        if path.suffix == ".html":
            method, keywords, options = "jinja2.ext:babel_extract", {"_": None}, OPTIONS["**.html"]
        elif path.suffix == ".js":
            method, keywords, options = "javascript", {"t": None}, OPTIONS["**.js"]
        else:
            method, keywords, options = "python", {"N_": None}, {}
        for lineno, message, _comments, _context in extract_from_file(
            method, path, keywords=keywords, options=options
        ):
            if isinstance(message, str) and message:
                found.setdefault(message, []).append((str(path), lineno))
    return found


def required(lang: str) -> Found:
    """The messages ``lang``'s catalog must translate (German: all; English: none)."""
    if lang in TRANSLATED:
        return extract()
    if lang in PATIENT_ONLY:
        return patient_messages()
    return {}


def translated(lang: str) -> dict[str, str]:
    catalog = read_catalog(lang)
    if catalog is None:
        return {}
    return {
        m.id: m.string
        for m in catalog
        if isinstance(m.id, str) and m.id and isinstance(m.string, str) and m.string and not m.fuzzy
    }


def untranslated(lang: str) -> Iterator[str]:
    done = translated(lang)
    for message in sorted(required(lang)):
        if message not in done:
            yield message


def placeholders(text: str) -> set[str]:
    """The names a text fills in (``{name}``, ``%(name)s``, a plural's number); ``{`` or
    ``}`` left over (a broken placeholder or plural) counts as the name ``"{"``."""
    names = {match[1] for match in PLURAL.finditer(text)}
    text = PLURAL.sub(lambda m: " ".join(f[1] for f in PLURAL_FORM.findall(m[2])), text)
    names |= {a or b for a, b in PLACEHOLDER.findall(text)}
    rest = PLACEHOLDER.sub("", text)
    return names | ({"{"} if "{" in rest or "}" in rest else set())


def placeholder_mismatches(lang: str) -> list[str]:
    """Translations whose ``{name}`` / ``%(name)s`` placeholders differ from the id's."""
    return sorted(
        message
        for message, text in translated(lang).items()
        if placeholders(message) != placeholders(text)
    )


def plural_problems(lang: str) -> list[str]:
    """Translations with a plural that nothing reads (a template's or Python's message: only
    page scripts choose plural forms) or without the ``other`` form."""
    uses = extract()
    problems = []
    for message, text in translated(lang).items():
        blocks = [m[2] for m in PLURAL.finditer(text)]
        if not blocks:
            continue
        scripts_only = all(path.endswith(".js") for path, _ in uses.get(message, []))
        has_other = all(any(f[0] == "other" for f in PLURAL_FORM.findall(b)) for b in blocks)
        if not scripts_only or not has_other:
            problems.append(message)
    return sorted(problems)


def update(lang: str) -> Catalog:
    old = read_catalog(lang)
    previous = {m.id: m.string for m in old if m.id} if old else {}
    catalog = Catalog(locale=lang, project="Konsil", fuzzy=False)
    for message, locations in sorted(required(lang).items()):
        catalog.add(message, previous.get(message, ""), locations=locations)
    path = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        write_po(f, catalog, omit_header=False, no_location=True, width=100)
    return catalog


def main(argv: list[str]) -> int:
    languages = (*TRANSLATED, *PATIENT_ONLY)
    if argv[:1] == ["update"]:
        for lang in languages:
            update(lang)
    problems = 0
    for lang in languages:
        uses = required(lang)
        for message in untranslated(lang):
            where = ", ".join(f"{Path(p).name}:{n}" for p, n in uses[message][:3])
            print(f"{lang}: untranslated: {message!r} ({where})")
            problems += 1
        for message in placeholder_mismatches(lang):
            print(f"{lang}: placeholders differ: {message!r}")
            problems += 1
        for message in plural_problems(lang):
            print(f"{lang}: plural outside a script or without 'other': {message!r}")
            problems += 1
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
