"""The OpenAPI document is built from the routes of the app that was built."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api import api_route, openapi_document
from app.schemas import Out, Schema


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
    assert operation["parameters"][0]["schema"] == {"type": "integer"}
    assert set(operation["responses"]) == {"200", "404", "422"}
    assert {"PingIn", "PingOut", "Error"} <= set(document["components"]["schemas"])
    # Nothing leaks in from routes registered elsewhere (no import-time registry).
    assert openapi_document([])["paths"] == {}
