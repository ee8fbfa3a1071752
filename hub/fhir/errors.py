"""Every error the hub raises on purpose, and the OperationOutcome each one becomes.

    FhirError                      (status, issue code; one or more issues with FHIRPath expressions)
    ├── BadRequest                 400  malformed input, bad search syntax, bad Bundle
    │   └── InvalidResource        400/422  parsed, but not a valid resource (type, cardinality, element)
    ├── Unauthorized               401  no/invalid credentials
    ├── Forbidden                  403  authenticated, but the decision is "deny" and existence may be shown
    ├── NotFound                   404  unknown type, id or version (also used to hide what may not be seen)
    ├── MethodNotAllowed           405
    ├── Conflict                   409  e.g. version conflict without If-Match, id clash in a transaction
    ├── Gone                       410  the resource was deleted
    ├── PreconditionFailed         412  If-Match mismatch, conditional operation with many matches
    ├── PayloadTooLarge            413
    ├── UnsupportedMediaType       415
    ├── Unprocessable              422  business rule / profile validation failure
    └── NotImplementedFhir         501  a known part of FHIR the hub does not offer

The API layer turns any ``FhirError`` into an OperationOutcome response; anything else that escapes
is a server bug (500).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome.issue: what is wrong and where (a FHIRPath expression)."""

    diagnostics: str
    code: str = "invalid"
    severity: str = "error"
    expression: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            out["expression"] = list(self.expression)
        return out


class FhirError(Exception):
    """Base class: an HTTP status plus the issues of the OperationOutcome to answer with."""

    status: int = 500
    code: str = "exception"

    def __init__(
        self,
        diagnostics: str,
        *,
        expression: str | list[str] | tuple[str, ...] | None = None,
        code: str | None = None,
        issues: list[Issue] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        if isinstance(expression, str):
            expression = (expression,)
        first = Issue(diagnostics, code or self.code, "error", tuple(expression or ()))
        self.issues: list[Issue] = issues if issues else [first]
        self.headers: dict[str, str] = headers or {}

    @property
    def diagnostics(self) -> str:
        return self.issues[0].diagnostics

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.issues)


class BadRequest(FhirError):
    status, code = 400, "invalid"


class InvalidResource(BadRequest):
    status, code = 400, "structure"


class Unauthorized(FhirError):
    status, code = 401, "login"


class Forbidden(FhirError):
    status, code = 403, "forbidden"


class NotFound(FhirError):
    status, code = 404, "not-found"


class MethodNotAllowed(FhirError):
    status, code = 405, "not-supported"


class Conflict(FhirError):
    status, code = 409, "conflict"


class Gone(FhirError):
    status, code = 410, "deleted"


class PreconditionFailed(FhirError):
    status, code = 412, "conflict"


class PayloadTooLarge(FhirError):
    status, code = 413, "too-costly"


class UnsupportedMediaType(FhirError):
    status, code = 415, "not-supported"


class Unprocessable(FhirError):
    status, code = 422, "processing"


class NotImplementedFhir(FhirError):
    status, code = 501, "not-supported"


class ServiceUnavailable(FhirError):
    """The server is busy for a moment (the database locked or out of connections): retry later."""

    status, code = 503, "transient"


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    """An OperationOutcome resource (as JSON) for the given issues."""
    return {"resourceType": "OperationOutcome", "issue": [i.to_json() for i in issues]}


def information(diagnostics: str, code: str = "informational") -> dict[str, Any]:
    """An OperationOutcome with one informational issue (e.g. for ``Prefer: return=OperationOutcome``)."""
    return operation_outcome([Issue(diagnostics, code, "information")])
