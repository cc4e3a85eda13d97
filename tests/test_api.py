"""The OpenAPI document is built from the routes of the app that was built."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api import ApiResource, api_route, by_path
from app.main import create_app
from app.openapi import openapi_document
from app.schemas import MAX_ID, Out, Schema
from app.settings import Settings


class PingIn(Schema):
    text: str


class PingOut(Out):
    text: str


async def ping(request: Request) -> Response:
    return Response()


def test_openapi_describes_exactly_the_routes_it_is_given() -> None:
    routes = [
        api_route(
            "/api/v1/ping/{id:int}",
            ping,
            method="POST",
            summary="Ping",
            tags=["test"],
            body=PingIn,
            response=PingOut,
            errors=[404],
        ),
        Route("/plain", ping),  # not an API route: not described
    ]
    document = openapi_document(routes)
    assert list(document["paths"]) == ["/api/v1/ping/{id}"]
    operation = document["paths"]["/api/v1/ping/{id}"]["post"]
    assert operation["parameters"][0]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": MAX_ID,
    }
    # Declared: 404; with a staff session: 401, 403; with a body: 413, 422.
    assert set(operation["responses"]) == {"200", "401", "403", "404", "413", "422"}
    assert {"PingIn", "PingOut", "Error"} <= set(document["components"]["schemas"])
    # Nothing leaks in from routes registered elsewhere (no import-time registry).
    assert openapi_document([])["paths"] == {}


def test_an_unknown_kind_of_caller_is_refused() -> None:
    with pytest.raises(ValueError, match="auth"):
        api_route("/api/v1/ping", ping, summary="Ping", tags=["test"], auth="stranger")


def test_routes_of_one_path_are_served_as_one() -> None:
    get = api_route("/api/v1/ping", ping, summary="Read", tags=["test"])
    post = api_route("/api/v1/ping", ping, method="POST", summary="Write", tags=["test"])
    other = api_route("/api/v1/pong", ping, summary="Other", tags=["test"])
    plain = Route("/plain", ping)
    joined = by_path([get, plain, post, other])
    assert [type(r).__name__ for r in joined] == ["ApiResource", "Route", "ApiRoute"]
    resource = joined[0]
    assert isinstance(resource, ApiResource)
    assert resource.methods == {"GET", "HEAD", "POST"}
    assert set(openapi_document(joined)["paths"]["/api/v1/ping"]) == {"get", "post"}


@pytest.fixture
def document(settings: Settings) -> dict[str, Any]:
    return openapi_document(create_app(settings).routes)


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, item in document["paths"].items() for m, op in item.items()]


def test_the_apps_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(document).validate()  # raises on an invalid document
    assert len(operations(document)) > 40


def test_every_id_in_a_path_is_an_integer_in_the_id_columns_range(
    document: dict[str, Any],
) -> None:
    ids = [
        (method, path, param)
        for method, path, op in operations(document)
        for param in op.get("parameters", [])
        if param["in"] == "path" and param["name"] != "key"  # a session's key is a string
    ]
    assert len(ids) > 20
    for method, path, param in ids:
        assert param["schema"] == {"type": "integer", "minimum": 1, "maximum": MAX_ID}, path
        # Below 1: 422; no such row, or beyond the range: 404.
        assert {"404", "422"} <= set(document["paths"][path][method]["responses"]), path


def test_the_csrf_header_is_asked_on_state_changing_operations_only(
    document: dict[str, Any],
) -> None:
    for method, path, op in operations(document):
        with_csrf = [s for s in op["security"] if "csrf" in s]
        if method == "get" or not op["security"]:
            assert with_csrf == [], (method, path)
        else:
            assert with_csrf == op["security"], (method, path)


@pytest.mark.parametrize(
    ("method", "path", "schemes"),
    [
        (
            "get",
            "/api/v1/rooms/{appointment_id}/ice",
            [{"staffSession"}, {"patientSession"}, {"guestSession"}],
        ),
        ("post", "/api/v1/precheck/offer", [{"staffSession"}, {"patientSession"}]),
        ("get", "/api/v1/patient/me", [{"patientSession"}]),
        ("get", "/api/v1/auth/me", [{"staffSession"}]),
        ("post", "/api/v1/auth/login", []),
        ("post", "/api/v1/patient/session", []),
        ("post", "/api/v1/guest/session", []),
        ("get", "/api/v1/guest/me", [{"guestSession"}]),
    ],
)
def test_security_names_who_may_call(
    document: dict[str, Any], method: str, path: str, schemes: list[set[str]]
) -> None:
    security = document["paths"][path][method]["security"]
    assert [set(s) - {"csrf"} for s in security] == schemes
    if schemes:
        assert "401" in document["paths"][path][method]["responses"]


def test_the_upload_and_the_download_are_described(document: dict[str, Any]) -> None:
    path = "/api/v1/appointments/{id}/documents"
    upload = document["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert upload["schema"]["required"] == ["file"]
    assert upload["schema"]["properties"]["file"] == {"type": "string", "format": "binary"}
    assert upload["encoding"]["file"]["contentType"] == "application/pdf, image/jpeg, image/png"
    assert {"413", "415"} <= set(document["paths"][path]["post"]["responses"])
    download = document["paths"][path + "/{doc_id}"]["get"]["responses"]["200"]["content"]
    assert set(download) == {"application/pdf", "image/jpeg", "image/png"}


def test_bookings_describe_the_idempotency_key(document: dict[str, Any]) -> None:
    (header,) = document["paths"]["/api/v1/appointments"]["post"]["parameters"]
    assert header["name"] == "Idempotency-Key"
    assert header["in"] == "header"
    assert not header["required"]
    assert header["schema"]["maxLength"] == 255


def test_query_parameters_are_described_from_the_model_that_parses_them(
    document: dict[str, Any],
) -> None:
    params = {p["name"]: p for p in document["paths"]["/api/v1/slots"]["get"]["parameters"]}
    assert set(params) == {"specialist", "specialty", "from", "to"}
    assert params["from"]["schema"]["format"] == "date"
    assert params["specialist"]["schema"]["maximum"] == MAX_ID
    assert not any(p["required"] for p in params.values())
