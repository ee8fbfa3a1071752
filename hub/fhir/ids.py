"""FHIR ids and references: what an id may look like, and how a reference string splits up."""

from __future__ import annotations

import re

from hub.fhir.errors import BadRequest

ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def check_id(res_id: str, expression: str | None = None) -> str:
    """A valid FHIR id, or a 400 naming what is wrong."""
    if not ID_PATTERN.match(res_id):
        raise BadRequest(
            f"'{res_id}' is not a valid FHIR id (1-64 characters from A-Z, a-z, 0-9, '-' and '.')",
            code="value",
            expression=expression,
        )
    return res_id
