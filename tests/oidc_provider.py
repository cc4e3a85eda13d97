"""A real OpenID provider for the single sign-on tests: ``tests/oidc/provider.mjs`` (the npm
package ``oidc-provider``) in a Node.js process on a free loopback port, one per test.

``npm ci --prefix tests/oidc`` installs it (``.ci/run`` does). Outside CI a machine without
Node.js or without the installed package skips these tests; with ``CI`` set that is a failure.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx2

from tests.live import free_port
from tests.services import require

OIDC_DIR = Path(__file__).resolve().parent / "oidc"
ACCOUNTS = json.loads((OIDC_DIR / "accounts.json").read_text())
PASSWORD = "klinik-test-2026"
CLIENT_ID = "konsil"
CLIENT_SECRET = "konsil-test-client-secret"  # a test provider's client, nothing real
START_TIMEOUT = 20.0
# The role claim's values that mean a Konsil role, as an operator would map them.
ROLE_MAP = {"konsil-gp": "gp", "konsil-specialist": "specialist", "konsil-admin": "admin"}


def require_provider() -> None:
    require(shutil.which("node") is not None, "Node.js (node)")
    require(
        (OIDC_DIR / "node_modules" / "oidc-provider").is_dir(),
        "the test OpenID provider (npm ci --prefix tests/oidc)",
    )


@dataclass
class Provider:
    issuer: str
    process: subprocess.Popen[bytes]
    log: Path

    def settings(self, **overrides: object) -> dict[str, object]:
        """Konsil's settings for this provider (as an operator sets KONSIL_OIDC_*)."""
        values: dict[str, object] = {
            "oidc_issuer": self.issuer,
            "oidc_client_id": CLIENT_ID,
            "oidc_client_secret": CLIENT_SECRET,
            "oidc_scopes": "openid email profile konsil",
            "oidc_role_map": ROLE_MAP,
            "oidc_practice_claim": "practice",
            "oidc_specialty_claim": "specialty",
        }
        values.update(overrides)
        return values


@dataclass
class ProviderConfig:
    """What ``provider.mjs`` reads; ``mint`` asks for misbehaviour (see provider.mjs)."""

    konsil_urls: list[str]
    accounts: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(ACCOUNTS))
    mint: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def run_provider(workdir: Path, config: ProviderConfig) -> Iterator[Provider]:
    """Starts ``provider.mjs`` on a free port and stops it (SIGTERM) at the end."""
    require_provider()
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    accounts = {k: v for k, v in config.accounts.items() if not k.startswith("_")}
    document = {
        "port": port,
        "issuer": issuer,
        "password": PASSWORD,
        "accounts": accounts,
        "mint": config.mint,
        "clients": [
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [f"{u}/auth/oidc/callback" for u in config.konsil_urls],
                "post_logout_redirect_uris": [f"{u}/login" for u in config.konsil_urls],
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "client_secret_basic",
            }
        ],
    }
    path = workdir / f"oidc-provider-{port}.json"
    path.write_text(json.dumps(document))
    log = workdir / f"oidc-provider-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["node", str(OIDC_DIR / "provider.mjs"), str(path)], stdout=out, stderr=out
        )
    provider = Provider(issuer=issuer, process=process, log=log)
    try:
        _wait_until_ready(provider)
        yield provider
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_ready(provider: Provider) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if provider.process.poll() is not None:
            raise RuntimeError(f"provider exited: {provider.log.read_text(errors='replace')}")
        if b"ready " in provider.log.read_bytes():
            return
        time.sleep(0.05)
    raise RuntimeError(f"provider did not start: {provider.log.read_text(errors='replace')}")


async def log_in_at_provider(
    idp: httpx2.AsyncClient,
    authorization_url: str,
    *,
    account: str,
    password: str = PASSWORD,
    cancel: bool = False,
) -> str:
    """Plays the person at the provider: follows the authorization request to the login form,
    submits it (or cancels) and returns the URL the provider sends the browser back to."""
    url = authorization_url
    provider_origin = _origin(authorization_url)
    for _ in range(10):
        if _origin(url) != provider_origin:
            return url
        response = await idp.get(url)
        if response.status_code in (302, 303):
            url = urljoin(url, response.headers["location"])
            continue
        assert response.status_code == 200, response.text
        action = re.search(r'action="(/interaction/[\w-]+/(login|abort))"', response.text)
        assert action is not None, response.text
        target = action.group(1).replace("/login", "/abort") if cancel else action.group(1)
        form = {} if cancel else {"login": account, "password": password}
        answer = await idp.post(urljoin(url, target), data=form)
        assert answer.status_code in (302, 303), answer.text
        url = urljoin(url, answer.headers["location"])
    raise AssertionError("the provider never sent the browser back")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def path_and_query(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


Tamper = Callable[[str], str]
