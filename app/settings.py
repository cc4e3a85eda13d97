"""Configuration: one frozen settings object, read from ``KONSIL_*`` environment variables."""

from __future__ import annotations

import re
from email.utils import parseaddr
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from email_validator import EmailNotValidError, validate_email
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRET = "konsil-development-secret-change-me"  # noqa: S105 - refused outside dev

Environment = Literal["development", "test", "production"]
OidcRole = Literal["admin", "gp", "specialist"]  # app.accounts.models.Role


class Settings(BaseSettings):
    """Everything an operator can set. Defaults run on a bare machine."""

    # A refused setting is named with the reason, never echoed: the values around it hold
    # passwords and keys (KONSIL_SMTP_URL, KONSIL_SMS_SECRET, KONSIL_SECRET_KEY).
    model_config = SettingsConfigDict(
        env_prefix="KONSIL_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    environment: Environment = "development"
    database_url: str = "sqlite+aiosqlite:///./var/konsil.db"
    broker_url: str = "memory://"
    secret_key: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    base_url: str = "http://127.0.0.1:8000"
    # Origins allowed to open the websocket and to send state-changing requests.
    # Empty means: only the origin of ``base_url``.
    allowed_origins: list[str] = Field(default_factory=list)
    timezone: str = "Europe/Berlin"

    session_ttl_minutes: int = Field(default=12 * 60, ge=5)
    patient_session_ttl_minutes: int = Field(default=6 * 60, ge=5)
    cookie_secure: bool = False

    # Staff sign-in (docs/deploy.md, "Sessions" and "Two-factor authentication"). A staff
    # session ends after this long without a request, page or websocket message.
    session_idle_minutes: int = Field(default=30, ge=1)
    # Roles that must have a second factor (TOTP or passkey). Unset: every staff role, except
    # in development. An empty list makes it optional for everyone.
    second_factor_roles: list[Literal["admin", "gp", "specialist"]] | None = None
    # Changing one's second factors and the admin's account actions need the password or a
    # second factor shown this recently in the same session.
    reauth_minutes: int = Field(default=10, ge=1, le=24 * 60)
    # WebAuthn relying party id: a registrable domain of the base URL's host (default: that
    # host). Passkeys are bound to it; changing it invalidates every registered passkey.
    webauthn_rp_id: str | None = None

    link_early_minutes: int = Field(default=30, ge=0)
    link_grace_minutes: int = Field(default=30, ge=0)

    # On-call requests (app/scheduling/on_call.py, docs/api.md "On-call requests"): how long a
    # request waits for a specialist of its specialty before the GP is told nobody took it,
    # and how long the consultation it becomes is planned to take (its patient link is valid
    # from the request until then plus ``link_grace_minutes``).
    on_call_claim_minutes: int = Field(default=10, ge=1, le=240)
    on_call_minutes: int = Field(default=60, ge=15, le=480)
    # At most so many of a GP's on-call requests open (nobody took them, not ended) at once:
    # a slip or a script cannot fill a specialty's queue.
    on_call_open_per_gp: int = Field(default=5, ge=1, le=50)
    # At most so many of a GP's written Telekonsile nobody has taken yet (app/scheduling/
    # written.py): a practice may send several a day, a script not hundreds.
    written_open_per_gp: int = Field(default=30, ge=1, le=500)

    # At most so many of a GP's asynchronous FHIR ``$book`` requests running at once (each is
    # a background task with a database connection); one more is refused 429.
    fhir_async_jobs_per_gp: int = Field(default=5, ge=1, le=50)
    # Token requests per FHIR system client id and hour at ``/oauth/token`` before each has to
    # wait (app/fhir/token.py); a token lasts 5 minutes, so 12 an hour suffice one process.
    fhir_token_requests_per_client: int = Field(default=60, ge=1)

    # Guessing throttles (app/throttle.py, docs/deploy.md "Login throttling"): attempts without
    # delay per account on one browser or from one address, then per address and per account
    # from unknown browsers; after them each attempt waits the first delay (1 s), then twice as
    # long as the one before, up to the maximum.
    login_free_attempts: int = Field(default=5, ge=1)
    login_free_attempts_shared: int = Field(default=20, ge=1)
    login_first_delay_seconds: float = Field(default=1.0, gt=0)
    login_max_delay_seconds: int = Field(default=900, ge=1)
    login_window_minutes: int = Field(default=60, ge=1)
    # A refused login or link attempt (429, 503) is answered after up to this many seconds of
    # the wait it asks for: honest clients lose nothing, a flood is slowed to the server's pace.
    login_refusal_pace_seconds: float = Field(default=1.0, ge=0, le=10)
    # Password hashing: worker threads (about 0.1 s of CPU per check) and how many more logins
    # may wait for one; beyond that a login gets 503 at once.
    password_workers: int = Field(default=2, ge=1)
    password_queue: int = Field(default=16, ge=0)

    booking_min_lead_minutes: int = Field(default=0, ge=0)
    booking_horizon_days: int = Field(default=90, ge=1)
    max_upload_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)

    stun_urls: list[str] = Field(default_factory=list)
    turn_urls: list[str] = Field(default_factory=list)
    turn_secret: SecretStr | None = None
    turn_ttl_seconds: int = Field(default=3600, ge=60)

    ws_max_frame_bytes: int = Field(default=64 * 1024, ge=1024)
    ws_send_queue: int = Field(default=256, ge=8)
    ws_rate_per_second: float = Field(default=50.0, gt=0)
    ws_rate_burst: int = Field(default=200, ge=1)
    ws_resume_seconds: int = Field(default=30, ge=1)
    # Whether a patient may share the screen in a call. Off: the patient's page offers no button
    # and forbids display capture, and the server refuses a patient's ``screen_sharing: true``.
    patient_screen_share: bool = False
    ws_join_timeout_seconds: float = Field(default=10.0, gt=0)
    # Open websockets one session may hold on one process (tabs: queue, call, a spare).
    ws_max_per_session: int = Field(default=8, ge=1)

    # How often each process looks for domain events that nobody delivered (another process
    # died between commit and delivery); events committed here are delivered at once anyway.
    outbox_sweep_seconds: float = Field(default=2.0, gt=0, le=300)

    # Retention (app/retention, docs/deploy.md "Retention"): an appointment and everything about
    # it (patient details, links, sessions, documents, report) is deleted this many days after
    # its consultation; KBV Anlage 31b allows metadata at most 3 months, so more than 92 is
    # refused. Documents and the report go earlier: this many days after the report is written
    # (or the appointment is cancelled), at the latest with the appointment. The audit log
    # keeps ids only after the metadata period and is deleted after its own. The job runs on
    # each process at this interval (one at a time across processes, through the broker).
    retention_metadata_days: int = Field(default=90, ge=1)
    retention_records_days: int = Field(default=30, ge=1)
    retention_audit_days: int = Field(default=365, ge=1)
    retention_interval_minutes: float = Field(default=60, gt=0, le=24 * 60)

    # Connection checks at once per process (0 turns the check off). One check costs the server
    # about a quarter to a third of a core for its ~1.6 s (it decodes and re-encodes video);
    # measured by bench/precheck_load.py (docs/performance.md, "Concurrent connection checks"):
    # beside relay load of 1,000 msg/s, one check at a time keeps one core at 50-60 % and relay
    # p99 for other rooms near 50 ms, two fill the core. A check beyond the limit waits up to
    # a second for a free slot before it gets 503.
    echo_max_concurrent: int = Field(default=1, ge=0)
    # Hard end of one check. The browser's check is over within 3 s and hangs up; a check whose
    # browser vanished (tab closed, line cut) holds its slot until ICE gives up (~30 s) or this.
    echo_max_seconds: int = Field(default=10, ge=5)

    log_json: bool = True
    log_level: str = "INFO"
    # One JSON line per HTTP request: method, route template, status, duration (no query/body).
    log_access: bool = True

    # Bearer token required at /metrics when set (otherwise keep /metrics off the internet).
    metrics_token: SecretStr | None = None
    # After SIGTERM, /readyz answers 503 this long before the server stops accepting.
    shutdown_drain_seconds: float = Field(default=0, ge=0, le=300)

    # The operator of this installation (the hospital), for the public pages /imprint, /terms and
    # /privacy (app/pages/legal.py, docs/deploy.md "Legal pages"). Konsil never invents them: a
    # page marks what is missing, and in production start-up logs legal.operator_incomplete.
    operator_name: str = ""
    operator_address: str = ""
    # Who may represent the operator (imprint), e.g. "Geschäftsführerin Dr. Anna Beispiel".
    operator_representative: str = ""
    operator_email: str = ""
    operator_phone: str = ""
    # Where the servers run (Anlage 31b: in the EU), e.g. "Rechenzentrum des Klinikums, Cottbus".
    operator_hosting: str = ""
    # The data protection officer: name and how to reach them.
    operator_dpo: str = ""
    # Optional: register entry, VAT id, supervisory authority, data protection authority.
    operator_register: str = ""
    operator_vat_id: str = ""
    operator_supervisory_authority: str = ""
    operator_dpa: str = ""
    # Optional directory with the operator's own texts as HTML fragments named
    # <page>.<lang>.html (terms, privacy, imprint; de, en); each replaces the shipped text.
    legal_dir: Path | None = None

    # Single sign-on for hospital staff with the hospital's OpenID provider (app/accounts/oidc.py,
    # docs/deploy.md "Single sign-on (OIDC)"). No issuer: no SSO, and no button on the login page.
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    # Unset: a public client (PKCE only, no client authentication at the token endpoint).
    oidc_client_secret: SecretStr | None = None
    oidc_scopes: str = "openid email profile"
    # Claims, by name or dotted path into nested claims (Keycloak: "realm_access.roles").
    oidc_role_claim: str = "roles"
    # JSON: the role claim's values that mean a Konsil role, e.g. {"konsil-gp": "gp"}.
    oidc_role_map: dict[str, OidcRole] = Field(default_factory=dict)
    oidc_practice_claim: str = "konsil_practice"  # a Konsil practice id
    oidc_specialty_claim: str = "konsil_specialty"  # a specialty slug, e.g. "kardiologie"
    # off: only accounts an admin created (bound on their first SSO login by verified e-mail);
    # create: unknown people with a mapped role get an account on their first login.
    oidc_provisioning: Literal["off", "create"] = "off"
    # The login button's text; unset: "Mit Klinik-Konto anmelden" (English page: in English).
    oidc_button_label: str | None = None
    # The provider's multi-factor login required: the id_token's acr must be one of these, and
    # its amr must name at least one of these methods (each only when set).
    oidc_required_acr: list[str] = Field(default_factory=list)
    oidc_required_amr: list[str] = Field(default_factory=list)
    oidc_clock_leeway_seconds: int = Field(default=60, ge=0, le=600)

    # E-mail to patients and GPs (app/notify, docs/deploy.md "E-mail"). No SMTP URL: nothing is
    # sent, and the pages say so. smtp://user:password@host:587 sends with STARTTLS (required;
    # "?starttls=false" only for a relay on the same host), smtps://user:password@host:465 with
    # implicit TLS; user and password percent-encoded. KONSIL_MAIL_FROM is the sender, e.g.
    # "Telekonsil Klinikum <telekonsil@klinikum.example>", required with the URL.
    smtp_url: SecretStr | None = None
    mail_from: str | None = None
    # A CA bundle (PEM) that signed the SMTP server's certificate (an internal CA); unset: the
    # system's CAs.
    smtp_ca_file: Path | None = None
    smtp_timeout_seconds: float = Field(default=30, gt=0, le=300)
    # Temporary failures (a 4xx answer, no connection) are retried after 1, 2, 4, … minutes (at
    # most an hour apart) until this many attempts in all; then the message counts as failed.
    mail_max_attempts: int = Field(default=8, ge=1, le=30)
    mail_retry_first_seconds: float = Field(default=60, gt=0, le=3600)
    # A message a process claimed and did not settle (it died mid-send) is sent by another
    # process after this long; longer than any one send can take (the timeout, twice).
    mail_lease_seconds: float = Field(default=300, ge=60, le=3600)
    # How often each process looks for messages due (a new one is sent at once anyway).
    # Attempts, back-off, lease and poll apply to SMS as well.
    mail_poll_seconds: float = Field(default=10, gt=0, le=300)

    # SMS to patients (app/notify, docs/deploy.md "SMS"). No SMS URL: nothing is sent by SMS,
    # and the pages say so. The scheme names the gateway: webhook+https://host/path (Konsil's
    # JSON, signed with HMAC-SHA256) or sipgate+https://api.sipgate.com/v2/sessions/sms?sms_id=s0.
    # KONSIL_SMS_SECRET is the webhook's signing key (at least 32 characters) or sipgate's
    # "<token id>:<token>".
    sms_url: SecretStr | None = None
    sms_secret: SecretStr | None = None
    # A CA bundle (PEM) that signed the gateway's certificate; unset: the system's CAs.
    sms_ca_file: Path | None = None
    sms_timeout_seconds: float = Field(default=15, gt=0, le=120)
    # Reminders to the patient before each appointment, through the channels its invitation
    # used: JSON, each "<n>d", "<n>h", "<n>m" or a number of minutes, e.g. ["24h", "15m"];
    # [] for none. Kept as minutes, longest first.
    reminders: list[int] = Field(default_factory=lambda: [24 * 60, 15])

    @field_validator(
        "turn_secret",
        "metrics_token",
        "oidc_issuer",
        "oidc_client_id",
        "oidc_client_secret",
        "oidc_button_label",
        "legal_dir",
        "smtp_url",
        "mail_from",
        "smtp_ca_file",
        "sms_url",
        "sms_secret",
        "sms_ca_file",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # "KONSIL_TURN_SECRET=" left empty in an env file means "not set", never "".
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("reminders", mode="before")
    @classmethod
    def _reminder_minutes(cls, value: object) -> object:
        if not isinstance(value, list | tuple):
            return value
        return sorted({_minutes(item) for item in value}, reverse=True)

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> Settings:
        if self.environment == "production":
            if self.secret_key.get_secret_value() == PLACEHOLDER_SECRET:
                raise ValueError("KONSIL_SECRET_KEY must be set to a real secret in production")
            if len(self.secret_key.get_secret_value()) < 32:
                raise ValueError("KONSIL_SECRET_KEY must be at least 32 characters")
            if not self.cookie_secure:
                raise ValueError("KONSIL_COOKIE_SECURE must be true in production (HTTPS)")
        if self.turn_urls and self.turn_secret is None:
            raise ValueError("KONSIL_TURN_SECRET is required when KONSIL_TURN_URLS is set")
        if self.legal_dir is not None and not self.legal_dir.is_dir():
            raise ValueError(f"KONSIL_LEGAL_DIR is not a directory: {self.legal_dir}")
        _check_retention(self)
        _check_mail(self)
        _check_sms(self)
        ZoneInfo(self.timezone)  # raises on an unknown zone
        self._check_oidc()
        return self

    def second_factor_required(self, role: str) -> bool:
        """Whether staff of ``role`` must sign in with a second factor."""
        if self.second_factor_roles is None:
            return self.environment != "development"
        return role in self.second_factor_roles

    @property
    def rp_id(self) -> str:
        """The WebAuthn relying party id."""
        return self.webauthn_rp_id or _origin_of(self.base_url).split("://", 1)[1].split(":")[0]

    def _check_oidc(self) -> None:
        if self.oidc_issuer is None:
            if self.oidc_client_id is not None:
                raise ValueError("KONSIL_OIDC_CLIENT_ID is set but KONSIL_OIDC_ISSUER is not")
            return
        if self.oidc_client_id is None:
            raise ValueError("KONSIL_OIDC_CLIENT_ID is required when KONSIL_OIDC_ISSUER is set")
        if not self.oidc_role_map:
            raise ValueError("KONSIL_OIDC_ROLE_MAP is required when KONSIL_OIDC_ISSUER is set")
        if not self.oidc_issuer.startswith(("https://", "http://")):
            raise ValueError("KONSIL_OIDC_ISSUER must be an http(s) URL")
        if self.environment == "production" and not self.oidc_issuer.startswith("https://"):
            raise ValueError("KONSIL_OIDC_ISSUER must be an https:// URL in production")
        if "openid" not in self.oidc_scopes.split():
            raise ValueError("KONSIL_OIDC_SCOPES must contain openid")

    @property
    def mail_configured(self) -> bool:
        """Whether e-mail is sent (an SMTP server and a sender are set)."""
        return self.smtp_url is not None

    @property
    def sms_configured(self) -> bool:
        """Whether SMS are sent (a gateway and its secret are set)."""
        return self.sms_url is not None

    @property
    def oidc_enabled(self) -> bool:
        return self.oidc_issuer is not None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def origins(self) -> frozenset[str]:
        """Origins accepted for websockets and unsafe requests."""
        if self.allowed_origins:
            return frozenset(o.rstrip("/") for o in self.allowed_origins)
        return frozenset({_origin_of(self.base_url)})


# KBV Anlage 31b: metadata is deleted after three months at the latest (92 days: the longest
# three calendar months).
MAX_METADATA_DAYS = 92


def _check_retention(settings: Settings) -> None:
    if settings.retention_metadata_days > MAX_METADATA_DAYS:
        raise ValueError(
            f"KONSIL_RETENTION_METADATA_DAYS must be at most {MAX_METADATA_DAYS}: KBV Anlage 31b "
            "requires metadata to be deleted after three months at the latest"
        )


def _check_mail(settings: Settings) -> None:
    if settings.smtp_url is None:
        if settings.mail_from is not None:
            raise ValueError("KONSIL_MAIL_FROM is set but KONSIL_SMTP_URL is not")
        return
    url = urlsplit(settings.smtp_url.get_secret_value())
    if url.scheme not in ("smtp", "smtps") or not url.hostname:
        raise ValueError("KONSIL_SMTP_URL must look like smtp://user:password@host:587")
    try:
        url.port  # noqa: B018 - raises on a port that is not a number or out of range
    except ValueError:
        # Not urllib's message: it quotes what it took for the port (a password with a "/").
        raise ValueError(
            "KONSIL_SMTP_URL: the port must be a number from 1 to 65535 "
            "(percent-encode /, ? and # in the user name and password)"
        ) from None
    if settings.mail_from is None:
        raise ValueError("KONSIL_MAIL_FROM is required when KONSIL_SMTP_URL is set")
    _name, address = parseaddr(settings.mail_from)
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        raise ValueError("KONSIL_MAIL_FROM must be an e-mail address") from None
    if settings.smtp_ca_file is not None and not settings.smtp_ca_file.is_file():
        raise ValueError(f"KONSIL_SMTP_CA_FILE is not a file: {settings.smtp_ca_file}")


def _check_sms(settings: Settings) -> None:
    # Imported here: the gateways module is pure and imports nothing of Konsil's.
    from app.notify.gateways import parse

    if settings.sms_url is None:
        if settings.sms_secret is not None:
            raise ValueError("KONSIL_SMS_SECRET is set but KONSIL_SMS_URL is not")
        return
    secret = settings.sms_secret.get_secret_value() if settings.sms_secret else None
    parse(settings.sms_url.get_secret_value(), secret)
    if settings.sms_ca_file is not None and not settings.sms_ca_file.is_file():
        raise ValueError(f"KONSIL_SMS_CA_FILE is not a file: {settings.sms_ca_file}")


MAX_REMINDER_MINUTES = 14 * 24 * 60
_UNITS = {"d": 24 * 60, "h": 60, "m": 1, "min": 1}
_REMINDER = re.compile(r"([0-9]{1,6})(d|h|min|m)?")


def _minutes(item: object) -> int:
    """A reminder's minutes from ``15``, ``"15m"``, ``"24h"`` or ``"2d"``."""
    found = None if isinstance(item, bool) else _REMINDER.fullmatch(str(item).strip().lower())
    if found is None:
        raise ValueError(f'KONSIL_REMINDERS: "{item}" is not like "24h", "15m", "2d" or 15')
    minutes = int(found[1]) * _UNITS[found[2] or "m"]
    if not 1 <= minutes <= MAX_REMINDER_MINUTES:
        raise ValueError("KONSIL_REMINDERS: each between 1 minute and 14 days before")
    return minutes


def _origin_of(url: str) -> str:
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0]
    return f"{scheme}://{host}"
