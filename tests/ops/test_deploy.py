"""The deployment files are consistent with each other and with the app's settings."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from app.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ROOT = DEPLOY.parent


def compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_runs_two_apps_postgres_redis_coturn_and_a_tls_proxy() -> None:
    services = compose()["services"]
    assert {"app1", "app2", "postgres", "redis", "coturn", "caddy", "migrate"} <= set(services)
    for app in ("app1", "app2"):
        env = services[app]["environment"]
        assert env["KONSIL_DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert env["KONSIL_BROKER_URL"].startswith("redis://:${REDIS_PASSWORD")
        assert env["KONSIL_BROKER_URL"].endswith("@redis:6379/0")
        assert services[app]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
        assert "ports" not in services[app], "apps are reachable only through the proxy"
    assert services["migrate"]["command"] == ["python", "-m", "app.cli", "migrate"]
    assert "443:443" in services["caddy"]["ports"]


def test_compose_redis_requires_the_password_the_apps_use() -> None:
    redis = compose()["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--requirepass") + 1] == "${REDIS_PASSWORD:?set REDIS_PASSWORD}"
    assert "--protected-mode" not in command
    assert "${REDIS_PASSWORD}" in redis["healthcheck"]["test"]


def test_compose_grace_period_covers_drain_and_graceful_timeout() -> None:
    app = compose()["services"]["app1"]
    grace = int(app["stop_grace_period"].rstrip("s"))
    drain = float(app["environment"]["KONSIL_SHUTDOWN_DRAIN_SECONDS"])
    assert grace > drain + uvicorn_graceful_timeout()


def dockerfile_command() -> list[str]:
    text = (DEPLOY / "Dockerfile").read_text()
    match = re.search(r"^CMD (\[.*?\])\s*$", text.replace("\\\n", ""), re.M | re.S)
    assert match, "no exec-form CMD"
    command = yaml.safe_load(match.group(1))
    assert isinstance(command, list)
    return [str(part) for part in command]


def uvicorn_graceful_timeout() -> int:
    command = dockerfile_command()
    return int(command[command.index("--timeout-graceful-shutdown") + 1])


def test_server_flags_are_the_measured_fast_ones_and_log_no_queries() -> None:
    unit = (DEPLOY / "systemd" / "konsil.service").read_text().replace("\\\n", " ")
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    for command in (" ".join(dockerfile_command()), exec_start):
        assert "--factory" in command
        assert "--ws websockets-sansio" in command
        assert "--loop uvloop" in command
        assert "--ws-per-message-deflate false" in command
        assert "--no-access-log" in command
        assert "--proxy-headers" in command
        assert "--timeout-graceful-shutdown" in command


def test_dockerfile_runs_as_non_root_with_a_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert text.startswith("#")
    assert "FROM python:3.11-slim" in text
    assert re.search(r"^USER konsil$", text, re.M)
    assert "HEALTHCHECK" in text
    assert "/healthz" in text
    assert "-c requirements.lock" in text


def test_env_example_names_only_real_settings() -> None:
    names = {
        line.split("=", 1)[0].removeprefix("KONSIL_").lower()
        for line in (DEPLOY / "konsil.env.example").read_text().splitlines()
        if line.startswith("KONSIL_")
    }
    assert names <= set(Settings.model_fields), names - set(Settings.model_fields)
    assert {"secret_key", "turn_secret", "database_url", "broker_url", "base_url"} <= names


def test_caddy_proxies_both_apps_and_hides_metrics() -> None:
    text = (DEPLOY / "caddy" / "Caddyfile").read_text()
    assert "reverse_proxy app1:8000 app2:8000" in text
    assert "respond /metrics 404" in text
    assert "health_uri /readyz" in text
    assert "Strict-Transport-Security" in text
    assert not re.search(r"^\s*log\b", text, re.M), "the proxy must not write access logs"


def test_caddy_keeps_the_apps_permissions_policy() -> None:
    # The staff call page allows screen capture, every other page denies it: the proxy may
    # only fill in a Permissions-Policy where the app sent none.
    text = (DEPLOY / "caddy" / "Caddyfile").read_text()
    policies = re.findall(r"^\s*(?:header\s+)?(\S*)Permissions-Policy\s+\"([^\"]*)\"", text, re.M)
    assert policies, "the proxy sets a default policy"
    for prefix, policy in policies:
        assert prefix == "?", "an unconditional Permissions-Policy would replace the app's"
        assert "display-capture=()" in policy


def test_caddy_cuts_slow_headers_but_not_websockets() -> None:
    text = (DEPLOY / "caddy" / "Caddyfile").read_text()
    timeouts = re.search(r"timeouts \{([^}]*)\}", text)
    assert timeouts is not None
    settings = dict(line.split() for line in timeouts.group(1).strip().splitlines())
    assert settings["read_header"] == "10s"  # slowloris
    assert "write" not in settings  # a websocket lives for a whole consultation


def test_systemd_unit_is_hardened() -> None:
    unit = (DEPLOY / "systemd" / "konsil.service").read_text()
    for directive in [
        "User=konsil",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=",
        "EnvironmentFile=/etc/konsil/konsil.env",
    ]:
        assert re.search(rf"^{re.escape(directive)}$", unit, re.M), directive


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    # systemd-analyze checks directive names and values; paths are pointed at this checkout.
    analyze = shutil.which("systemd-analyze")
    unit = (DEPLOY / "systemd" / "konsil.service").read_text()
    venv = ROOT / ".venv"
    copy = tmp_path / "konsil.service"
    copy.write_text(unit.replace("/srv/konsil/.venv", str(venv)).replace("/srv/konsil", str(ROOT)))
    if analyze is None:
        assert "[Service]" in unit  # nothing more to run on machines without systemd
        return
    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, check=False
    )
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.strip() and "konsil.env" not in line  # /etc/konsil does not exist here
    ]
    assert problems == []
