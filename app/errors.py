"""Domain errors, and the one place that maps them to HTTP statuses and websocket close codes.

Services raise these; they never raise HTTP exceptions. Every error a user can cause carries a
stable machine-readable ``code``, a human message (German), its HTTP ``status`` and the
websocket close code (``ws_close``) it ends a connection with. No web framework here: the pure
signalling core raises these too; ``app.api`` turns them into JSON responses.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ValidationError

# Websocket close codes (4000-4999 are for applications, RFC 6455 section 7.4.2).
WS_NORMAL = 1000
WS_GOING_AWAY = 1001
WS_POLICY_VIOLATION = 1008
WS_MESSAGE_TOO_BIG = 1009
WS_INTERNAL_ERROR = 1011  # a fault of the server's own: the client resumes
WS_TRY_AGAIN_LATER = 1013
WS_UNAUTHENTICATED = 4401
WS_FORBIDDEN = 4403
WS_NOT_FOUND = 4404
WS_ROOM_CLOSED = 4410
WS_RATE_LIMITED = 4429
WS_SLOW_CONSUMER = 4408
WS_REPLACED = 4409
WS_ROOM_FULL = 4419  # the call has its four participants (patient, specialist, GP, guest)


class KonsilError(Exception):
    """Base of all domain errors."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    ws_close: ClassVar[int] = WS_POLICY_VIOLATION
    default_message: ClassVar[str] = "Die Anfrage ist ungültig."

    def __init__(self, message: str | None = None, **detail: Any) -> None:
        self.message = message or self.default_message
        self.detail = detail
        super().__init__(self.message)


class InvalidInput(KonsilError):
    status = 422
    code = "invalid_input"
    default_message = "Die Eingaben sind ungültig."


class InvalidQuarter(KonsilError):
    """A quarter that is not given as ``YYYY-QN`` (the EBM export, ``app.billing``)."""

    status = 400
    code = "invalid_quarter"
    default_message = "Bitte das Quartal als JJJJ-QN angeben, z. B. 2026-Q4."


class NotAuthenticated(KonsilError):
    status = 401
    code = "not_authenticated"
    ws_close = WS_UNAUTHENTICATED
    default_message = "Bitte melden Sie sich an."


class InvalidCredentials(KonsilError):
    status = 401
    code = "invalid_credentials"
    ws_close = WS_UNAUTHENTICATED
    default_message = "E-Mail-Adresse oder Passwort ist falsch."


class InvalidCode(KonsilError):
    status = 401
    code = "invalid_code"
    ws_close = WS_UNAUTHENTICATED
    default_message = "Der Code ist falsch oder schon benutzt. Bitte versuchen Sie es erneut."


class SecondFactorRequired(KonsilError):
    """The password was right; the session waits for the second factor."""

    status = 403
    code = "second_factor_required"
    ws_close = WS_UNAUTHENTICATED
    default_message = "Bitte bestätigen Sie die Anmeldung mit Ihrem zweiten Faktor."


class EnrolmentRequired(KonsilError):
    """The account must set up a second factor before anything else."""

    status = 403
    code = "second_factor_enrolment_required"
    ws_close = WS_UNAUTHENTICATED
    default_message = "Bitte richten Sie zuerst die Zwei-Faktor-Anmeldung ein."


class ReauthRequired(KonsilError):
    status = 403
    code = "reauth_required"
    default_message = "Bitte bestätigen Sie diese Aktion mit Ihrem Passwort oder zweiten Faktor."


class ReauthAtProvider(KonsilError):
    """An account with neither a password nor a second factor (single sign-on only) confirms
    a sensitive action by signing in at the hospital's provider again (``detail.url``)."""

    status = 409
    code = "reauth_at_provider"
    default_message = "Bitte bestätigen Sie diese Aktion mit Ihrem Klinik-Konto."


class TooManyAttempts(KonsilError):
    status = 429
    code = "too_many_attempts"
    ws_close = WS_RATE_LIMITED
    default_message = "Zu viele Versuche. Bitte warten Sie einige Minuten."


class CsrfFailed(KonsilError):
    status = 403
    code = "csrf_failed"
    default_message = "Die Sicherheitsprüfung des Formulars ist fehlgeschlagen. Bitte neu laden."


class Forbidden(KonsilError):
    status = 403
    code = "forbidden"
    ws_close = WS_FORBIDDEN
    default_message = "Dafür fehlt Ihnen die Berechtigung."


class NotYourRoom(Forbidden):
    code = "not_your_room"
    default_message = "Dieser Konsilraum gehört nicht zu Ihrem Termin."


class NotFound(KonsilError):
    status = 404
    code = "not_found"
    ws_close = WS_NOT_FOUND
    default_message = "Nicht gefunden."


class RecordsDeleted(NotFound):
    """A report that was written, then deleted by retention (``app.retention``)."""

    code = "records_deleted"
    default_message = "Der Bericht wurde nach Ablauf der Aufbewahrungsfrist gelöscht."


class LinkInvalid(KonsilError):
    status = 404
    code = "link_invalid"
    ws_close = WS_UNAUTHENTICATED
    default_message = "Dieser Link ist ungültig oder wurde widerrufen."


class LinkNotYetValid(KonsilError):
    status = 403
    code = "link_not_yet_valid"
    ws_close = WS_FORBIDDEN
    default_message = "Der Link ist erst 30 Minuten vor dem Termin gültig."


class LinkExpired(KonsilError):
    status = 410
    code = "link_expired"
    ws_close = WS_ROOM_CLOSED
    default_message = "Dieser Link ist abgelaufen."


class LinkUsed(KonsilError):
    """A single-use link (a guest's) that another browser has already opened."""

    status = 409
    code = "link_used"
    ws_close = WS_UNAUTHENTICATED
    default_message = (
        "Dieser Einladungslink wurde schon auf einem anderen Gerät geöffnet. Bitte fragen Sie "
        "die Praxis nach einem neuen Link."
    )


class SlotTaken(KonsilError):
    status = 409
    code = "slot_taken"
    default_message = "Dieser Termin ist nicht mehr frei."


class SlotUnavailable(KonsilError):
    status = 409
    code = "slot_unavailable"
    default_message = "Zu dieser Zeit bietet die Fachärztin bzw. der Facharzt keine Termine an."


class Conflict(KonsilError):
    status = 409
    code = "conflict"
    default_message = "Das ist im aktuellen Zustand nicht möglich."


class InvalidTransition(Conflict):
    code = "invalid_transition"
    default_message = "Dieser Schritt ist im aktuellen Zustand des Raums nicht möglich."


class NoVideoRoom(Conflict):
    """A written Telekonsil has no video room (no link, no call, no guest)."""

    code = "no_video_room"
    ws_close = WS_FORBIDDEN
    default_message = "Dieses Telekonsil ist schriftlich: es hat keinen Videoraum."


class RoomClosed(Conflict):
    code = "room_closed"
    ws_close = WS_ROOM_CLOSED
    default_message = "Diese Konsultation ist beendet."


class PayloadTooLarge(KonsilError):
    status = 413
    code = "payload_too_large"
    ws_close = WS_MESSAGE_TOO_BIG
    default_message = "Die Datei ist zu groß."


class UnsupportedMediaType(KonsilError):
    status = 415
    code = "unsupported_media_type"
    default_message = "Dieser Dateityp wird nicht angenommen (erlaubt: PDF, JPEG, PNG)."


class RateLimited(KonsilError):
    status = 429
    code = "rate_limited"
    ws_close = WS_RATE_LIMITED
    default_message = "Zu viele Nachrichten in kurzer Zeit."


class Unavailable(KonsilError):
    status = 503
    code = "unavailable"
    ws_close = WS_TRY_AGAIN_LATER
    default_message = "Der Dienst ist gerade ausgelastet. Bitte gleich noch einmal versuchen."


class SsoFailed(KonsilError):
    """A single sign-on that could not be completed: a bad, foreign or replayed callback, an
    error answer of the provider, a code or id_token that does not hold. ``reason`` is a short
    code for the audit log and the page (never personal data)."""

    status = 400
    code = "sso_failed"
    default_message = "Die Anmeldung mit dem Klinik-Konto ist fehlgeschlagen."

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.reason = reason


class SsoRefused(SsoFailed):
    """A verified person that Konsil does not let in (no account, deactivated, unmapped role)."""

    status = 403
    code = "sso_refused"
    default_message = "Mit diesem Klinik-Konto ist keine Anmeldung bei Konsil möglich."


class SsoUnavailable(SsoFailed):
    """The OpenID provider cannot be reached or answers nonsense (discovery, keys, tokens)."""

    status = 503
    code = "sso_unavailable"
    default_message = "Der Anmeldedienst der Klinik ist gerade nicht erreichbar."


class RoomFull(KonsilError):
    """The call already has its four participants (a mesh of at most four)."""

    status = 409
    code = "room_full"
    ws_close = WS_ROOM_FULL
    default_message = "Das Gespräch hat schon vier Teilnehmende; mehr sind nicht möglich."


class ProtocolError(KonsilError):
    """A refused websocket message: the client gets an ``error`` message with this ``code``,
    the connection stays open."""

    code = "protocol_error"


class NotInRoom(ProtocolError):
    code = "not_in_room"
    default_message = "Diese Verbindung zeigt nur die Warteschlange."


class AlreadyJoined(ProtocolError):
    code = "already_joined"
    default_message = "Sie sind bereits im Raum."


class JoinFirst(ProtocolError):
    code = "join_first"
    default_message = "Bitte zuerst dem Raum beitreten."


class NotInCall(ProtocolError):
    code = "not_in_call"
    default_message = "Sie sind noch im Wartezimmer."


class ScreenShareNotAllowed(ProtocolError):
    code = "screen_share_not_allowed"
    default_message = "Bildschirm teilen ist für Patientinnen und Patienten nicht freigegeben."


class UnknownPeer(ProtocolError):
    code = "unknown_peer"
    default_message = "Diese Person ist nicht in Ihrem Raum."


def error_body(code: str, message: str, **detail: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if detail:
        body["detail"] = detail
    return {"error": body}


def validation_detail(exc: ValidationError) -> list[dict[str, Any]]:
    """Field errors without echoing the submitted values back (they may be health data)."""
    return [
        {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
