"""The pure parts of single sign-on: claims to an identity, the login strength, who gets in,
and the settings that switch it on."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from pydantic import ValidationError

from app.accounts.models import Role, User
from app.accounts.oidc import Action, Identity, check_assurance, decide, identity
from app.errors import SsoRefused
from app.settings import Settings

ISSUER = "https://sso.klinikum.example/realms/klinikum"
KEYCLOAK: dict[str, Any] = {
    "oidc_issuer": ISSUER,
    "oidc_client_id": "konsil",
    "oidc_role_claim": "realm_access.roles",
    "oidc_role_map": {"konsil-gp": "gp", "konsil-specialist": "specialist"},
}


def settings(**overrides: Any) -> Settings:
    return Settings(environment="test", **{**KEYCLOAK, **overrides})


def claims(**overrides: Any) -> dict[str, Any]:
    return {
        "iss": ISSUER,
        "sub": "f3a1-77",
        "email": "Weiss@Klinikum.example",
        "email_verified": True,
        "name": "Dr. Felix Weiß",
        "realm_access": {"roles": ["offline_access", "konsil-specialist"]},
        "konsil_specialty": "kardiologie",
        **overrides,
    }


def account(**fields: Any) -> User:
    values: dict[str, Any] = {
        "id": 7,
        "email": "weiss@klinikum.example",
        "display_name": "Dr. Felix Weiß",
        "role": Role.SPECIALIST,
        "password_hash": None,
        "specialty_id": 1,
        **fields,
    }
    return User(**values)


def test_identity_reads_nested_role_claims_and_normalises_the_email() -> None:
    person = identity(claims(), settings())
    assert person.role is Role.SPECIALIST
    assert person.email == "weiss@klinikum.example"
    assert person.specialty == "kardiologie"
    assert (person.issuer, person.subject) == (ISSUER, "f3a1-77")


def test_identity_takes_a_claim_whose_name_has_dots_before_a_path() -> None:
    namespaced = {"https://klinikum.example/roles": ["konsil-gp"]}
    person = identity(
        claims(**namespaced), settings(oidc_role_claim="https://klinikum.example/roles")
    )
    assert person.role is Role.GP


def test_identity_without_a_mapped_role_has_none() -> None:
    person = identity(claims(realm_access={"roles": ["pflege"]}), settings())
    assert person.role is None


def test_identity_with_two_mapped_roles_is_refused() -> None:
    both = {"roles": ["konsil-gp", "konsil-specialist"]}
    with pytest.raises(SsoRefused) as refused:
        identity(claims(realm_access=both), settings())
    assert refused.value.reason == "role_ambiguous"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("12", 12), (12, 12), (["3"], 3), ("x", None), (True, None), ("0", None), (2**63, None)],
)
def test_identity_practice_claim_is_a_practice_id(value: object, expected: int | None) -> None:
    person = identity(claims(konsil_practice=value), settings())
    assert person.practice_id == expected


def test_identity_ignores_an_email_that_is_not_one() -> None:
    assert identity(claims(email="nobody"), settings()).email is None
    assert identity(claims(email_verified="true"), settings()).email_verified is False


def test_decide_logs_in_the_bound_account() -> None:
    person = identity(claims(), settings())
    bound = account(oidc_issuer=ISSUER, oidc_subject="f3a1-77")
    decision = decide(person, bound=bound, by_email=None, settings=settings())
    assert decision.action is Action.LOGIN
    assert decision.user is bound


def test_decide_binds_an_unbound_account_by_verified_email() -> None:
    person = identity(claims(), settings())
    decision = decide(person, bound=None, by_email=account(), settings=settings())
    assert decision.action is Action.BIND


def test_decide_never_rebinds_an_account_bound_to_another_subject() -> None:
    person = identity(claims(), settings())
    taken = account(oidc_issuer=ISSUER, oidc_subject="someone-else")
    with pytest.raises(SsoRefused) as refused:
        decide(person, bound=None, by_email=taken, settings=settings())
    assert refused.value.reason == "identity_conflict"


@pytest.mark.parametrize(
    ("person_changes", "bound", "reason"),
    [
        ({"role": None}, account(oidc_subject="f3a1-77"), "role"),
        ({}, account(oidc_subject="f3a1-77", is_active=False), "inactive"),
        ({"role": Role.GP}, account(oidc_subject="f3a1-77"), "role_mismatch"),
    ],
)
def test_decide_refuses(person_changes: dict[str, Any], bound: User, reason: str) -> None:
    person = replace(identity(claims(), settings()), **person_changes)
    with pytest.raises(SsoRefused) as refused:
        decide(person, bound=bound, by_email=None, settings=settings())
    assert refused.value.reason == reason


@pytest.mark.parametrize(
    ("mode", "person_changes", "outcome"),
    [
        ("off", {}, "no_account"),
        ("create", {}, Action.CREATE),
        ("create", {"email_verified": False}, "email_unverified"),
        ("create", {"specialty": None}, "specialty"),
        ("create", {"role": Role.GP, "practice_id": None}, "practice"),
        ("create", {"role": Role.GP, "practice_id": 4}, Action.CREATE),
    ],
)
def test_decide_provisioning(mode: str, person_changes: dict[str, Any], outcome: object) -> None:
    cfg = settings(oidc_provisioning=mode)
    person: Identity = replace(identity(claims(), cfg), **person_changes)
    if isinstance(outcome, Action):
        assert decide(person, bound=None, by_email=None, settings=cfg).action is outcome
        return
    with pytest.raises(SsoRefused) as refused:
        decide(person, bound=None, by_email=None, settings=cfg)
    assert refused.value.reason == outcome


def test_assurance_checks_acr_and_amr_only_when_required() -> None:
    person = identity(claims(acr="1", amr=["pwd"]), settings())
    check_assurance(person, settings())
    with pytest.raises(SsoRefused):
        check_assurance(person, settings(oidc_required_acr=["mfa"]))
    with pytest.raises(SsoRefused):
        check_assurance(person, settings(oidc_required_amr=["otp", "hwk"]))
    strong = identity(claims(acr="mfa", amr=["pwd", "hwk"]), settings())
    check_assurance(strong, settings(oidc_required_acr=["mfa"], oidc_required_amr=["otp", "hwk"]))


def test_settings_without_issuer_mean_no_sso() -> None:
    assert not Settings(environment="test").oidc_enabled
    assert not Settings(environment="test", oidc_issuer="  ").oidc_enabled
    assert settings().oidc_enabled


@pytest.mark.parametrize(
    "overrides",
    [
        {"oidc_client_id": None},
        {"oidc_role_map": {}},
        {"oidc_issuer": "sso.klinikum.example"},
        {"oidc_scopes": "email profile"},
        {"oidc_role_map": {"konsil-gp": "doctor"}},
        {"oidc_issuer": None},  # a client id without an issuer
    ],
)
def test_settings_refuse_an_incomplete_sso_configuration(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        settings(**overrides)


def test_settings_want_an_https_issuer_in_production() -> None:
    production: dict[str, Any] = {
        "environment": "production",
        "secret_key": "s" * 40,
        "cookie_secure": True,
    }
    with pytest.raises(ValidationError, match="https"):
        Settings(**{**KEYCLOAK, "oidc_issuer": "http://sso.klinikum.example", **production})
    assert Settings(**{**KEYCLOAK, **production}).oidc_enabled
