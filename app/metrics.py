"""Prometheus metrics, served at /metrics. Labels never carry names, ids or health data."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

WS_CONNECTIONS = Gauge(
    "konsil_ws_connections", "Open signalling websockets", ["role"], registry=REGISTRY
)
WS_MESSAGES = Counter(
    "konsil_ws_messages_total", "Signalling messages received, by type", ["type"], registry=REGISTRY
)
WS_ERRORS = Counter(
    "konsil_ws_errors_total",
    "Signalling errors sent or close codes used",
    ["code"],
    registry=REGISTRY,
)
ROOMS_ACTIVE = Gauge(
    "konsil_rooms_active", "Consultation rooms with at least one participant", registry=REGISTRY
)
PATIENTS_WAITING = Gauge(
    "konsil_patients_waiting",
    "Patients in a waiting room right now (from the database: the same on every instance)",
    registry=REGISTRY,
)
WAIT_SECONDS = Histogram(
    "konsil_wait_seconds",
    "Time from entering the waiting room to being admitted",
    buckets=(30, 60, 120, 300, 600, 900, 1800, 3600),
    registry=REGISTRY,
)
HTTP_ERRORS = Counter(
    "konsil_http_errors_total", "HTTP error responses by status", ["status"], registry=REGISTRY
)
BOOKINGS = Counter("konsil_bookings_total", "Appointments booked", registry=REGISTRY)
ECHO_CHECKS = Gauge("konsil_echo_checks_active", "Connection checks running", registry=REGISTRY)
EVENTS_DELIVERED = Counter(
    "konsil_events_delivered_total",
    "Domain events handed to every listener, by type",
    ["type"],
    registry=REGISTRY,
)
EVENTS_FAILED = Counter(
    "konsil_events_failed_total",
    "Domain event deliveries that failed: retried later, or set aside for the operator",
    ["type", "outcome"],
    registry=REGISTRY,
)
THROTTLED = Counter(
    "konsil_throttled_total",
    "Login and join-link attempts refused by a throttle before anything was checked",
    ["policy"],
    registry=REGISTRY,
)
PASSWORD_CHECKS = Counter(
    "konsil_password_checks_total",
    "Argon2 password verifications run (each one is ~0.1 s of CPU in a worker thread)",
    registry=REGISTRY,
)
PASSWORD_OVERLOADED = Counter(
    "konsil_password_overloaded_total",
    "Logins answered 503 at once because the password workers and their queue were full",
    registry=REGISTRY,
)
TASKS_FAILED = Counter(
    "konsil_background_task_failures_total",
    "Background tasks (room subscriptions, resume timers, dashboards, the dispatcher) that "
    "ended with an error; the rest of the process goes on",
    ["task"],
    registry=REGISTRY,
)
BROKER_DROPPED = Counter(
    "konsil_broker_messages_dropped_total",
    "Messages between server processes that were malformed or unknown and were dropped",
    ["channel"],
    registry=REGISTRY,
)
BROKER_LISTENER_FAILED = Counter(
    "konsil_broker_listener_failures_total",
    "Messages a broker listener (a room replica) failed on; logged with their traceback",
    registry=REGISTRY,
)
RETENTION_DELETED = Counter(
    "konsil_retention_deleted_total",
    "Rows deleted by the retention job, by kind (appointments, documents, reports, links, "
    "sessions, messages, events, idempotent_responses, audit_events)",
    ["kind"],
    registry=REGISTRY,
)
RETENTION_AUDIT_REDUCED = Counter(
    "konsil_retention_audit_reduced_total",
    "Audit rows the retention job reduced to ids after the metadata period",
    registry=REGISTRY,
)
RETENTION_RUNS = Counter(
    "konsil_retention_runs_total",
    "Retention job rounds: done, skipped (another process held this period) or failed",
    ["outcome"],
    registry=REGISTRY,
)
MESSAGES_SENT = Counter(
    "konsil_messages_total",
    "Outgoing messages (e-mail, SMS) by kind, channel and outcome of an attempt: sent, queued "
    "(to be retried), failed, superseded",
    ["kind", "channel", "outcome"],
    registry=REGISTRY,
)
