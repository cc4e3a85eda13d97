"""Configuration: one frozen settings object, read from ``KONSIL_*`` environment variables."""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRET = "konsil-development-secret-change-me"  # noqa: S105 - refused outside dev

Environment = Literal["development", "test", "production"]


class Settings(BaseSettings):
    """Everything an operator can set. Defaults run on a bare machine."""

    model_config = SettingsConfigDict(env_prefix="KONSIL_", frozen=True, extra="ignore")

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

    link_early_minutes: int = Field(default=30, ge=0)
    link_grace_minutes: int = Field(default=30, ge=0)

    # Guessing throttles (app/throttle.py, docs/deploy.md "Login throttling"): attempts without
    # delay per account on one browser or from one address, then per address and per account
    # from unknown browsers; after them each attempt waits the first delay (1 s), then twice as
    # long as the one before, up to the maximum.
    login_free_attempts: int = Field(default=5, ge=1)
    login_free_attempts_shared: int = Field(default=20, ge=1)
    login_first_delay_seconds: float = Field(default=1.0, gt=0)
    login_max_delay_seconds: int = Field(default=900, ge=1)
    login_window_minutes: int = Field(default=60, ge=1)
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

    echo_max_concurrent: int = Field(default=4, ge=0)
    echo_max_seconds: int = Field(default=30, ge=5)

    log_json: bool = True
    log_level: str = "INFO"
    # One JSON line per HTTP request: method, route template, status, duration (no query/body).
    log_access: bool = True

    # Bearer token required at /metrics when set (otherwise keep /metrics off the internet).
    metrics_token: SecretStr | None = None
    # After SIGTERM, /readyz answers 503 this long before the server stops accepting.
    shutdown_drain_seconds: float = Field(default=0, ge=0, le=300)

    @field_validator("turn_secret", "metrics_token", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # "KONSIL_TURN_SECRET=" left empty in an env file means "not set", never "".
        if isinstance(value, str) and not value.strip():
            return None
        return value

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
        _check_retention(self)
        ZoneInfo(self.timezone)  # raises on an unknown zone
        return self

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


def _origin_of(url: str) -> str:
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0]
    return f"{scheme}://{host}"
