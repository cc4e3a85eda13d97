"""Terms of use, privacy notice and imprint: public pages without login and without JavaScript.

KBV Anlage 31b wants the terms of use readable in German without logging in; a German service
also needs an imprint (§ 5 DDG) and a privacy notice (Art. 13 GDPR). The shipped texts
(``frontend/templates/legal/<page>.<lang>.html``) say what Konsil does and fill in the operator
from ``KONSIL_OPERATOR_*``; what the operator has not set is marked as missing, never invented.
A hospital replaces a text with its lawyer's by putting ``<page>.<lang>.html`` (an HTML
fragment) into ``KONSIL_LEGAL_DIR``. The pages read no cookie but the language and touch no
database, so they answer even when the rest of the service is down.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.accounts import devices
from app.accounts.models import SessionKind
from app.accounts.web import cookie_name, device_cookie_name
from app.logging import get_logger
from app.pages import i18n
from app.pages.i18n import N_
from app.pages.sso import FLOW_SECONDS, flow_cookie_name
from app.pages.templating import render
from app.resources import Resources, settings
from app.settings import Settings

log = get_logger("konsil.legal")

PAGES: dict[str, str] = {
    "terms": N_("Terms of use"),
    "privacy": N_("Privacy notice"),
    "imprint": N_("Imprint"),
}
# When the shipped texts last changed in substance (shown as "Stand" / "Last updated").
TEXT_VERSION = "2026-12-05"


@dataclass(frozen=True)
class OperatorField:
    setting: str  # the attribute of Settings; the environment variable is KONSIL_<upper>
    label: str  # message id, shown when it is missing
    required: bool

    @property
    def variable(self) -> str:
        return f"KONSIL_{self.setting.upper()}"


FIELDS = (
    OperatorField("operator_name", N_("name of the operator"), required=True),
    OperatorField("operator_address", N_("postal address"), required=True),
    OperatorField("operator_representative", N_("authorised representative"), required=True),
    OperatorField("operator_email", N_("e-mail address"), required=True),
    OperatorField("operator_phone", N_("telephone number"), required=True),
    OperatorField("operator_hosting", N_("where the servers are located"), required=True),
    OperatorField("operator_dpo", N_("data protection officer"), required=True),
    OperatorField("operator_register", N_("register entry"), required=False),
    OperatorField("operator_vat_id", N_("VAT identification number"), required=False),
    OperatorField("operator_supervisory_authority", N_("supervisory authority"), required=False),
    OperatorField("operator_dpa", N_("data protection supervisory authority"), required=False),
)


def operator(cfg: Settings) -> dict[str, str]:
    """The operator's details by short name (``name``, ``email``…), blank when not set."""
    return {
        f.setting.removeprefix("operator_"): str(getattr(cfg, f.setting)).strip() for f in FIELDS
    }


def missing(cfg: Settings) -> list[OperatorField]:
    """The required operator details this installation has not filled in."""
    return [f for f in FIELDS if f.required and not str(getattr(cfg, f.setting)).strip()]


@dataclass(frozen=True)
class Text:
    """What a legal page shows: the operator's own fragment, or the shipped template."""

    lang: str
    html: Markup | None = None
    template: str | None = None


def text_for(cfg: Settings, page: str, lang: str) -> Text:
    """The operator's text in ``lang``, else theirs in another language (German first, it is
    the binding one), else Konsil's own text in ``lang``. The operator's text is never mixed
    with Konsil's: a page the operator replaced in one language is theirs in every language."""
    for candidate in _search_order(lang):
        path = override_path(cfg, page, candidate)
        if path is not None and path.is_file():
            # Written by the operator, trusted like the templates; the CSP still blocks scripts.
            html = Markup(path.read_text(encoding="utf-8", errors="replace"))  # noqa: S704
            return Text(lang=candidate, html=html)
    return Text(lang=lang, template=f"legal/{page}.{lang}.html")


def override_path(cfg: Settings, page: str, lang: str) -> Path | None:
    return cfg.legal_dir / f"{page}.{lang}.html" if cfg.legal_dir is not None else None


def _search_order(lang: str) -> list[str]:
    others = [i18n.DEFAULT_LANGUAGE, *i18n.LANGUAGES]
    return list(dict.fromkeys([lang, *others]))


def cookie_names(cfg: Settings) -> dict[str, object]:
    """The cookies' names as this installation sets them (``__Host-``/``__Secure-`` over
    HTTPS); the single sign-on's flow cookie only where single sign-on is set up."""
    return {
        "patient": cookie_name(cfg, SessionKind.PATIENT),
        "guest": cookie_name(cfg, SessionKind.GUEST),
        "staff": cookie_name(cfg, SessionKind.STAFF),
        "device": device_cookie_name(cfg),
        "oidc": flow_cookie_name(cfg) if cfg.oidc_enabled else "",
        "oidc_minutes": FLOW_SECONDS // 60,
    }


def hours(minutes: int, lang: str) -> str:
    """``360`` -> ``"6"``, ``90`` -> ``"1,5"`` in German."""
    value = f"{minutes / 60:.1f}".removesuffix(".0")
    return value.replace(".", ",") if lang == "de" else value


def _endpoint(page: str) -> Callable[[Request], Awaitable[Response]]:
    async def show(request: Request) -> Response:
        cfg = settings(request)
        lang = i18n.language(request)
        text = text_for(cfg, page, lang)
        context: dict[str, object] = {
            "nav": "legal",
            "title": PAGES[page],
            "text": text,
            "op": operator(cfg),
            # Only Konsil's own texts use the settings; an operator's text speaks for itself.
            "missing": missing(cfg) if text.template else [],
            "link_early_minutes": cfg.link_early_minutes,
            "link_grace_minutes": cfg.link_grace_minutes,
            "patient_session_hours": hours(cfg.patient_session_ttl_minutes, lang),
            "staff_session_hours": hours(cfg.session_ttl_minutes, lang),
            "device_days": devices.LIFETIME.days,
            "cookies": cookie_names(cfg),
            "metadata_days": cfg.retention_metadata_days,
            "mail_configured": cfg.mail_configured,
            "sms_configured": cfg.sms_configured,
            "records_days": min(cfg.retention_records_days, cfg.retention_metadata_days),
            "version": TEXT_VERSION,
        }
        return render(request, "legal.html", context)

    show.__name__ = f"legal_{page}"
    return show


routes = [Route(f"/{page}", _endpoint(page), methods=["GET"]) for page in PAGES]


@asynccontextmanager
async def lifespan(res: Resources) -> AsyncIterator[None]:
    """Says at start-up what the legal pages will show, so an operator sees gaps in the log."""
    cfg = res.settings
    gaps = missing(cfg)
    if gaps and cfg.environment == "production":
        log.warning("legal.operator_incomplete", missing=[f.variable for f in gaps])
    if cfg.legal_dir is not None:
        found = sorted(p.name for p in cfg.legal_dir.glob("*.html"))
        log.info("legal.operator_texts", files=found)
        for page in PAGES:
            has_any = any(f.startswith(f"{page}.") for f in found)
            if has_any and f"{page}.{i18n.DEFAULT_LANGUAGE}.html" not in found:
                log.warning("legal.german_text_missing", page=page)
    yield
