"""The OpenID provider as Konsil (the relying party) talks to it: the thin I/O of single sign-on.

authlib over httpx2: discovery (``/.well-known/openid-configuration``) and the provider's keys
(JWKS) are fetched once and cached (keys again when a token names an unknown key id), the
authorization request carries ``state``, ``nonce`` and a PKCE S256 challenge, the code is
exchanged at the token endpoint with the code verifier, and the id_token is validated: its
signature against the JWKS, ``iss``, ``aud``, ``exp``/``iat`` (with a small leeway), ``nonce``,
``azp`` and ``at_hash``. What the claims mean for Konsil is decided in ``app.accounts.oidc``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from app.errors import SsoFailed, SsoUnavailable
from app.logging import get_logger
from app.resources import Resources
from app.settings import Settings

log = get_logger("konsil.oidc")

METADATA_TTL_SECONDS = 3600.0
HTTP_TIMEOUT_SECONDS = 10.0


def new_secret() -> str:
    """A random value for ``state``, ``nonce`` or a PKCE code verifier (48 characters)."""
    return str(generate_token(48))


class OidcClient:
    """One provider (``KONSIL_OIDC_ISSUER``) and Konsil's client there."""

    def __init__(self, settings: Settings, http: AsyncOAuth2Client) -> None:
        assert settings.oidc_issuer is not None
        self.settings = settings
        self.issuer = settings.oidc_issuer.rstrip("/")
        self.client_id = settings.oidc_client_id
        self.http = http
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (cached for an hour)."""
        if self._metadata is None or time.monotonic() - self._metadata_at > METADATA_TTL_SECONDS:
            document = await self._get_json(f"{self.issuer}/.well-known/openid-configuration")
            # The document must be the issuer's own (OpenID Connect Discovery 1.0, 4.3).
            if document.get("issuer", "").rstrip("/") != self.issuer:
                log.warning("oidc.discovery_issuer_mismatch")
                raise SsoUnavailable("discovery")
            for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(document.get(key), str):
                    raise SsoUnavailable("discovery")
            self._metadata, self._metadata_at = document, time.monotonic()
            self._keys = None
        return self._metadata

    async def authorization_url(
        self,
        *,
        redirect_uri: str,
        state: str,
        nonce: str,
        code_verifier: str,
        fresh_login: bool = False,
    ) -> str:
        """Where to send the browser: the authorization request (code flow, PKCE S256). With
        ``fresh_login`` (re-authentication) the provider must ask the person again, whatever
        session it has (``prompt=login``, ``max_age=0``; the id_token then carries
        ``auth_time``)."""
        metadata = await self.metadata()
        extra: dict[str, str] = {"nonce": nonce}
        if self.settings.oidc_required_acr:
            extra["acr_values"] = " ".join(self.settings.oidc_required_acr)
        if fresh_login:
            extra["prompt"], extra["max_age"] = "login", "0"
        url, _ = self.http.create_authorization_url(
            metadata["authorization_endpoint"],
            state=state,
            code_verifier=code_verifier,
            redirect_uri=redirect_uri,
            scope=self.settings.oidc_scopes,
            **extra,
        )
        return str(url)

    async def exchange(self, *, code: str, code_verifier: str, redirect_uri: str) -> dict[str, Any]:
        """Redeems the authorization code at the token endpoint."""
        metadata = await self.metadata()
        try:
            token = await self.http.fetch_token(
                metadata["token_endpoint"],
                grant_type="authorization_code",
                code=code,
                code_verifier=code_verifier,
                redirect_uri=redirect_uri,
            )
        except OAuthError as exc:
            # invalid_grant: a replayed, expired or foreign code, or a wrong code verifier.
            log.info("oidc.code_rejected", error=str(exc.error)[:40])
            raise SsoFailed("code_rejected") from exc
        except httpx2.HTTPError as exc:
            raise SsoUnavailable("token_endpoint") from exc
        except ValueError as exc:  # not JSON
            raise SsoFailed("token_response") from exc
        if not isinstance(token.get("id_token"), str):
            raise SsoFailed("token_response")
        return dict(token)

    async def id_token_claims(
        self, id_token: str, *, nonce: str, access_token: str | None
    ) -> dict[str, Any]:
        """The validated claims of ``id_token``; ``SsoFailed`` says what was wrong."""
        metadata = await self.metadata()
        algorithms = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        # Never "none" and never a symmetric algorithm keyed with a public key.
        algorithms = [a for a in algorithms if a != "none" and not a.startswith("HS")]
        registry = JWSRegistry(algorithms=algorithms, strict_check_header=False)
        try:
            try:
                token = jwt.decode(id_token, await self._key_set(), registry=registry)
            except InvalidKeyIdError:  # the provider rotated its keys
                token = jwt.decode(id_token, await self._key_set(refresh=True), registry=registry)
            claims = CodeIDToken(
                token.claims,
                token.header,
                {
                    "iss": {"essential": True, "values": [self.issuer, self.issuer + "/"]},
                    "aud": {"essential": True, "value": self.client_id},
                    "nonce": {"essential": True, "value": nonce},
                },
                {"nonce": nonce, "client_id": self.client_id, "access_token": access_token},
            )
            claims.validate(leeway=self.settings.oidc_clock_leeway_seconds)
        except ExpiredTokenError as exc:
            raise SsoFailed("id_token_expired") from exc
        except (InvalidClaimError, MissingClaimError) as exc:
            raise SsoFailed(f"id_token_{exc.claim}"[:40]) from exc
        except BadSignatureError as exc:
            raise SsoFailed("id_token_signature") from exc
        except (JoseError, ValueError) as exc:
            raise SsoFailed("id_token_invalid") from exc
        return dict(claims)

    async def end_session_url(self, *, post_logout_redirect_uri: str) -> str | None:
        """RP-initiated logout at the provider, if it offers it."""
        try:
            metadata = await self.metadata()
        except SsoUnavailable:
            return None
        endpoint = metadata.get("end_session_endpoint")
        if not isinstance(endpoint, str):
            return None
        request = httpx2.URL(endpoint).copy_merge_params(
            {
                "client_id": self.client_id or "",
                "post_logout_redirect_uri": post_logout_redirect_uri,
            }
        )
        return str(request)

    async def _key_set(self, *, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            metadata = await self.metadata()
            document = await self._get_json(metadata["jwks_uri"])
            try:
                self._keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
            except (JoseError, ValueError, KeyError, TypeError) as exc:
                raise SsoUnavailable("jwks") from exc
        return self._keys

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self.http.request("GET", url, withhold_token=True)
            response.raise_for_status()
            document = response.json()
        except (httpx2.HTTPError, ValueError) as exc:
            log.warning("oidc.provider_unreachable", error=type(exc).__name__)
            raise SsoUnavailable("provider_unreachable") from exc
        if not isinstance(document, dict):
            raise SsoUnavailable("provider_unreachable")
        return document


@asynccontextmanager
async def open_client(settings: Settings) -> AsyncIterator[OidcClient]:
    """The provider's client for the lifespan; its HTTP connections close at the end."""
    secret = settings.oidc_client_secret
    async with AsyncOAuth2Client(
        client_id=settings.oidc_client_id,
        client_secret=secret.get_secret_value() if secret else None,
        token_endpoint_auth_method="client_secret_basic" if secret else "none",
        code_challenge_method="S256",
        timeout=HTTP_TIMEOUT_SECONDS,
        follow_redirects=False,
    ) as http:
        yield OidcClient(settings, http)


@asynccontextmanager
async def lifespan(res: Resources) -> AsyncIterator[None]:
    """Opens the provider's client when single sign-on is configured (``res.oidc``)."""
    if not res.settings.oidc_enabled:
        yield
        return
    async with open_client(res.settings) as client:
        res.oidc = client
        try:
            yield
        finally:
            res.oidc = None
