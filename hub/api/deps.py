"""FastAPI dependencies: the per-app objects a route needs, as ``Annotated`` aliases.

Everything lives on ``app.state`` (built by the lifespan in :mod:`hub.app`); tests replace any of it
through ``app.dependency_overrides``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from hub.api.negotiate import Format, negotiate
from hub.settings import Settings
from hub.store.repository import Repository


def get_repo(request: Request) -> Repository:
    return request.app.state.repo  # type: ignore[no-any-return]


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_format(request: Request) -> Format:
    return negotiate(request)


def fhir_base(request: Request) -> str:
    """The FHIR base URL as the client reached it (scheme, host and root path)."""
    return str(request.base_url).rstrip("/") + "/fhir"


RepoDep = Annotated[Repository, Depends(get_repo)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
FormatDep = Annotated[Format, Depends(get_format)]
BaseDep = Annotated[str, Depends(fhir_base)]
