"""The policy objects every operation asks (hub.access.decision, AccessPolicy's may-operate and audit scope):
the hub's own work sees everything by name, a request without a token sees nothing, and a caller's
answers depend on who it is."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import false, true

from hub.access.decision import ANONYMOUS, SYSTEM, AuditScope
from hub.access.policy import AccessPolicy, Delegated
from hub.access.principal import ADMIN_SCOPE, Principal
from hub.fhir.errors import Forbidden
from hub.store.tables import resource


def _policy(principal: Principal, **facts: Any) -> AccessPolicy:
    return AccessPolicy(principal, 0, **facts)


PROFESSIONAL = Principal("professional", "ecd", organisation_ura="00012345")
CLIENT = Principal("client", "bsn:999993653", patient_bsn="999993653")
ADMIN = Principal("admin", "beheer", scopes=frozenset({ADMIN_SCOPE}))
MANTELZORGER = Principal("related", "p1", person_id="p1", acting_for="999993653")


def test_the_system_policy_sees_everything_and_is_named() -> None:
    assert SYSTEM.internal and SYSTEM.author_ura is None and SYSTEM.principal is None
    assert SYSTEM.sql_filter(resource).compare(true()) and SYSTEM.history_filter(resource).compare(true())
    assert SYSTEM.audit_scope() == AuditScope()
    SYSTEM.check_operation("access")
    with pytest.raises(Forbidden):
        SYSTEM.check_operation("export")


def test_a_request_without_a_token_sees_nothing() -> None:
    assert not ANONYMOUS.internal
    assert ANONYMOUS.sql_filter(resource).compare(false())
    assert ANONYMOUS.audit_scope() == AuditScope(patient_ids=frozenset())
    for operation in ("access", "break-glass", "export"):
        with pytest.raises(Forbidden):
            ANONYMOUS.check_operation(operation)


@pytest.mark.parametrize(
    ("principal", "facts", "allowed"),
    [
        (CLIENT, {"patient_ids": ("p1",)}, {"access", "export"}),
        (ADMIN, {}, {"access", "export"}),
        (PROFESSIONAL, {}, {"break-glass", "export"}),
        (PROFESSIONAL, {"emergency_reason": "CPR"}, {"break-glass"}),
        (MANTELZORGER, {"delegated": Delegated(("p1",), frozenset({"zorgplan"}), False)}, {"export"}),
        (MANTELZORGER, {"delegated": Delegated(("p1",), frozenset(), True)}, {"access", "export"}),
    ],
)
def test_may_operate_is_asked_of_the_callers_policy(
    principal: Principal, facts: dict[str, Any], allowed: set[str]
) -> None:
    policy = _policy(principal, **facts)
    for operation in ("access", "break-glass", "export"):
        if operation in allowed:
            policy.check_operation(operation)
        else:
            with pytest.raises(Forbidden):
                policy.check_operation(operation)
    with pytest.raises(ValueError):
        policy.check_operation("everything")


def test_audit_scope_by_caller() -> None:
    assert _policy(ADMIN).audit_scope() == AuditScope()
    assert _policy(CLIENT, patient_ids=("p1",)).audit_scope() == AuditScope(patient_ids=frozenset({"p1"}))
    assert _policy(PROFESSIONAL).audit_scope() == AuditScope(agent_ura="00012345", successful_only=True)
    audit = Delegated(("p1",), frozenset({"audit"}), False)
    care = Delegated(("p1",), frozenset({"zorgplan"}), False)
    assert _policy(MANTELZORGER, delegated=audit).audit_scope() == AuditScope(patient_ids=frozenset({"p1"}))
    assert _policy(MANTELZORGER, delegated=care).audit_scope() == AuditScope(patient_ids=frozenset())
    assert _policy(Principal("system", "x")).audit_scope() == AuditScope(patient_ids=frozenset())
