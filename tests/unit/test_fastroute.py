"""The FHIR catch-all matched first (hub.api.fastroute): it takes exactly what the FHIR router would
take, and leaves every other route's paths under /fhir to that route."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.routing import Match

from hub.api.fastroute import PrefixRoute, static_beginnings
from hub.app import create_app
from hub.settings import Settings


def _scope(method: str, path: str, **extra: Any) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": [], **extra}


def _first_route(tmp_path: Path) -> PrefixRoute:
    app = create_app(Settings(environment="test", var_dir=tmp_path, demo=False))
    route = app.router.routes[0]
    assert isinstance(route, PrefixRoute)
    return route


def test_fhir_paths_are_matched_with_the_rest_of_the_path(tmp_path: Path) -> None:
    route = _first_route(tmp_path)
    for path, rest in [
        ("/fhir", ""),
        ("/fhir/", ""),
        ("/fhir/metadata", "metadata"),
        ("/fhir/Patient/1/_history/2", "Patient/1/_history/2"),
        ("/fhir/Patient/$everything", "Patient/$everything"),
        ("/fhir/bulkstatus", "bulkstatus"),  # no job id: not the bulk route's path
    ]:
        match, child = route.matches(_scope("GET", path))
        assert match == Match.FULL, path
        assert child["path_params"] == {"path": rest}


def test_other_paths_methods_and_scopes_are_left_to_the_routes_behind(tmp_path: Path) -> None:
    route = _first_route(tmp_path)
    for method, path in [
        ("GET", "/fhirx"),
        ("GET", "/healthz"),
        ("GET", "/fhir/.well-known/smart-configuration"),
        ("GET", "/fhir/bulkstatus/abc"),
        ("DELETE", "/fhir/bulkstatus/abc"),
        ("GET", "/fhir/bulkfiles/abc/Patient.ndjson"),
        ("OPTIONS", "/fhir/Patient"),  # the FHIR router answers 405, as before
    ]:
        assert route.matches(_scope(method, path))[0] == Match.NONE, (method, path)
    assert route.matches({"type": "websocket", "path": "/fhir/Patient", "headers": []})[0] == Match.NONE


def test_the_root_path_is_not_part_of_the_route_path(tmp_path: Path) -> None:
    route = _first_route(tmp_path)
    match, child = route.matches(_scope("GET", "/hub/fhir/Patient", root_path="/hub"))
    assert match == Match.FULL and child["path_params"] == {"path": "Patient"}


def test_every_other_route_under_fhir_is_left_alone(tmp_path: Path) -> None:
    app = create_app(Settings(environment="test", var_dir=tmp_path, demo=False))
    route = app.router.routes[0]
    assert isinstance(route, PrefixRoute)
    assert set(route.others) == {"/fhir/.well-known/smart-configuration", "/fhir/bulkstatus/", "/fhir/bulkfiles/"}


def test_static_beginnings() -> None:
    assert static_beginnings(["/fhir/a/{x}", "/admin/{y}", "/fhir/b", "/fhirx"], "/fhir") == ["/fhir/a/", "/fhir/b"]
