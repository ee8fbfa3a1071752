"""The refusals of the workflow layer: which rule said no, and what would have been allowed.

They are ordinary :class:`~hub.fhir.errors.FhirError` subclasses (so every path, a Bundle entry
included, answers them as an OperationOutcome) marked ``denial`` so that the audit log records them
as denied, with the rule as the reason, like any other refusal of the access decision.
"""

from __future__ import annotations

from collections.abc import Iterable

from hub.fhir.errors import Conflict, FhirError, Forbidden, Issue, Unprocessable


class WorkflowRefusal:
    """Mixin: a refusal by a workflow rule (``rule``), with the next states that were allowed."""

    denial = True
    rule: str = ""
    allowed: tuple[str, ...] = ()


class WorkflowForbidden(WorkflowRefusal, Forbidden):
    """403: the caller has no right over this part (ownership, another party's activity)."""


class WorkflowConflict(WorkflowRefusal, Conflict):
    """409: the transition is not one the state machine allows (for this party)."""


class WorkflowUnprocessable(WorkflowRefusal, Unprocessable):
    """422: the transition is allowed, but the content it needs is missing or wrong."""


_KINDS: dict[int, type[FhirError]] = {403: WorkflowForbidden, 409: WorkflowConflict, 422: WorkflowUnprocessable}


def refuse(
    status: int,
    rule: str,
    message: str,
    *,
    expression: str | None = None,
    allowed: Iterable[str] | None = None,
    allowed_label: str = "Allowed next states for you",
) -> FhirError:
    """The error to raise: diagnostics ``Rule <rule>: <message>``; when ``allowed`` is given, a
    second (information) issue lists the allowed next states ("none" when there are none)."""
    allowed_t = tuple(allowed) if allowed is not None else ()
    kind = _KINDS[status]
    code = "forbidden" if status == 403 else "business-rule"
    where = (expression,) if expression else ()
    issues = [Issue(f"Rule {rule}: {message}", code, "error", where)]
    if allowed is not None:
        issues.append(
            Issue(f"{allowed_label}: {', '.join(allowed_t) or 'none'}", "informational", "information", where)
        )
    err = kind(issues[0].diagnostics, issues=issues)
    assert isinstance(err, WorkflowRefusal)
    err.rule = rule
    err.allowed = allowed_t
    return err
