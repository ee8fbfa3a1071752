"""The one place where access is decided.

An :class:`AccessPolicy` is built once per request from the caller's :class:`Principal` (with the
facts that must be fresh: the caller's patients, delegations in force). It answers every question
the hub asks, and nothing else decides:

- :meth:`AccessPolicy.sql_filter` — the condition a ``resource`` row must meet to be seen. Searches,
  includes, revincludes, chains, ``_has``, history, compartments, ``$everything`` and counts all
  apply it *in SQL, before paging*, so pages and totals agree and nothing hidden can be inferred.
- :meth:`AccessPolicy.check_read` — the same filter, run on one row (so a read can never disagree
  with a search). Invisible resources are "not found", whether or not they exist.
- :meth:`AccessPolicy.check_write` — may the caller write this content (and touch this current
  version)? Then the repository asks the workflow rules (:mod:`hub.workflows`): is this change theirs?
- :meth:`AccessPolicy.check_operation` — may the caller run an ``$operation`` at all;
  :meth:`AccessPolicy.audit_scope` — which audit records it sees.

Default is deny: a caller sees only what a rule below opens.

- client (PGO): everything in their own Patient compartment(s), and public reference data;
- related person (mantelzorger, legal representative): the delegated categories of the client(s)
  they act for, while the delegation is in force;
- professional (organisation URA): what it wrote, and the categories ``access_grant`` opens for
  clients with whom it has a care relationship (consent applied); with a break-the-glass reason,
  also the client's other data the client did not object to; as the receiver of an overdracht,
  what the Task's state opens (:meth:`AccessPolicy._overdracht`);
- administrator: registration, network, consent and audit data, never clinical content;
- every authenticated caller: public reference data (category ``registratie``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy import Table, and_, bindparam, case, exists, false, literal_column, or_, select, true
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.expression import FromClause

from hub.access import organisations
from hub.access.clients import DelegationLookup, table_delegations
from hub.access.decision import OPERATIONS, AuditScope
from hub.access.facts import Grantor, patient_ids_for_bsn, settle
from hub.access.grants import NEVER_FOR_PROFESSIONALS, PUBLIC
from hub.access.principal import Principal, parse_scopes
from hub.access.tables import access_grant, break_glass, care_relation, consent_rule, overdracht_access, resource_author
from hub.fhir.errors import Conflict, Forbidden, NotFound, Unprocessable
from hub.fhir.instants import now_us
from hub.fhir.validation.bsn import BSN_SYSTEM
from hub.store import pg_batch
from hub.store.db import Database
from hub.store.deferred import owed
from hub.store.direct import DriverConnection, InTransaction
from hub.store.policy import Verdict
from hub.store.resources import JoinedIds, Stored, patients_by_identifier
from hub.store.tables import history_compartment, idx_compartment, idx_token, resource
from hub.store.tables import resource as resource_table

#: What an administrator may read and write: never clinical content.
ADMIN_CATEGORIES = frozenset({"registratie", "netwerk", "toestemming", "audit"})
#: What clients may write about themselves (wishes, goals, their network, consent).
CLIENT_WRITABLE = frozenset({"acp", "zorgplan", "netwerk", "toestemming", "agenda", "documenten"})
#: Relationship codes that carry the client's own rights (wettelijk vertegenwoordiger, curator,
#: voogd, mentor).
LEGAL_REPRESENTATIVE_ROLES = frozenset({"24", "03", "11", "15"})
#: Purposes of use a consent rule may name and still speak to emergency access: treatment, and
#: emergency treatment (HL7 v3 ActReason). A rule for another purpose (research ...) does not.
EMERGENCY_PURPOSES = frozenset({"TREAT", "ETREAT"})
#: Categories professionals may not write (privacy consent is the client's or an administrator's).
PROFESSIONAL_NOT_WRITABLE = frozenset({"toestemming", "audit"})
#: Definitions that take effect hub-wide (a stored SearchParameter indexes every client's data).
HUB_WIDE_DEFINITIONS = frozenset({"SearchParameter"})
#: National identifier systems (BSN, URA): ASCII digits only (no full-width or other digits).
NATIONAL_IDENTIFIERS = frozenset(
    {
        BSN_SYSTEM,
        "http://fhir.nl/fhir/NamingSystem/ura",
    }
)
#: The types whose writes make care relations (hub.access.facts).
RELATION_SOURCES = frozenset({"CareTeam", "ServiceRequest", "Task"})


@dataclass(frozen=True, slots=True)
class Membership:
    """Where a row's Patient compartments are: ``idx_compartment`` by ``pid`` for current
    versions, ``history_compartment`` by ``hid`` for each stored version."""

    table: Table
    key: str


CURRENT = Membership(idx_compartment, "pid")
VERSIONS = Membership(history_compartment, "hid")


@dataclass(frozen=True, slots=True)
class Delegated:
    """What a related person may do for one client."""

    patient_ids: tuple[str, ...]
    categories: frozenset[str]
    legal_representative: bool


@dataclass(slots=True)
class AccessPolicy:
    """The access decision for one caller (see the module's docstring); a :class:`hub.access.decision.Policy`."""

    #: A caller's decision, never the hub's own (:class:`hub.access.decision.SystemPolicy`).
    internal: ClassVar[bool] = False

    principal: Principal
    now: int
    #: client: their own Patient ids; related: the ids of the client acted for.
    patient_ids: tuple[str, ...] = ()
    delegated: Delegated | None = None
    #: professional: the organisation's type codes (for consent rules by organisation type).
    org_types: frozenset[str] = frozenset()
    emergency_reason: str | None = None
    read_types: frozenset[str] | None = None  # None: every type (scopes)
    notes: list[str] = field(default_factory=list)
    #: Patients this request found the organisation in care of (see _in_care).
    in_care: set[str] = field(default_factory=set)
    #: Whether the organisation is a registered gemeente, once asked (see _gemeente).
    is_gemeente: bool | None = None
    #: Resources (pid) this request found the organisation wrote (see _authored).
    authored: set[int] = field(default_factory=set)
    #: Patients a create's check left to its write statement to confirm in care (see write_guard).
    care_unconfirmed: list[str] = field(default_factory=list)

    # -- queries --------------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        return self.principal.kind

    @property
    def emergency(self) -> bool:
        return self.emergency_reason is not None

    @property
    def author_ura(self) -> str | None:
        """The organisation recorded as the author of what this caller writes."""
        return self.principal.organisation_ura

    def check_operation(self, operation: str) -> None:
        """Forbidden unless the caller may run ``$operation`` at all (its own rules follow):
        ``$access`` is the client's, their legal representative's or an administrator's question;
        ``$break-glass`` a professional's of a registered organisation; ``$export`` anyone's but not
        under emergency access, which is per interaction; ``$reindex`` an administrator's."""
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}")
        p = self.principal
        if operation == "access":
            legal = self.delegated is not None and self.delegated.legal_representative
            if not (p.kind == "client" or p.kind == "admin" or legal):
                raise Forbidden("Only the client, their legal representative or an administrator may ask this")
        elif operation == "break-glass":
            if p.kind != "professional" or not p.organisation_ura:
                raise Forbidden("Only professionals of registered care providers can break the glass")
        elif operation == "reindex":
            if not (p.kind == "admin" and p.is_admin):
                raise Forbidden("Only administrators may rebuild the search index")
        elif operation == "export" and self.emergency:
            raise Forbidden("Emergency access (break the glass) is per interaction; it does not cover a bulk export")

    def audit_scope(self) -> AuditScope:
        """Administrators: all; a client: accesses to their own data; a related person: those of the
        client they act for, if the client delegated 'audit' (or they are the legal representative);
        a professional: only what its own organisation did, successfully."""
        p = self.principal
        if p.kind == "admin" and p.is_admin:
            return AuditScope()
        if p.kind == "client":
            return AuditScope(patient_ids=frozenset(self.patient_ids))
        if p.kind == "related":
            d = self.delegated
            if d is not None and (d.legal_representative or "audit" in d.categories):
                return AuditScope(patient_ids=frozenset(d.patient_ids))
            return AuditScope(patient_ids=frozenset())
        if p.kind == "professional" and p.organisation_ura:
            return AuditScope(agent_ura=p.organisation_ura, successful_only=True)
        return AuditScope(patient_ids=frozenset())

    def shape(self) -> tuple[Any, ...]:
        """What decides the *form* of :meth:`sql_filter` (its values are bind parameters, see
        :meth:`params`): statements built from the filter can be cached per shape."""
        d = self.delegated
        return (
            self.kind,
            self.principal.is_admin,
            bool(self.principal.organisation_ura),
            bool(self.patient_ids),
            d is not None,
            d is not None and d.legal_representative,
            self.emergency,
            self.read_types is None,
        )

    def params(self) -> dict[str, Any]:
        """The values of the filter's bind parameters for this caller, at this moment."""
        d = self.delegated
        return {
            "acl_ura": self.principal.organisation_ura or "",
            "acl_now": self.now,
            "acl_patients": list(d.patient_ids if d is not None else self.patient_ids),
            "acl_categories": sorted(d.categories) if d is not None else [],
            "acl_types": sorted(self.read_types or ()),
            "acl_org_types": sorted(self.org_types),
        }

    def _p(self, name: str) -> BindParameter[Any]:
        value = self.params()[name]
        return bindparam(name, value, expanding=isinstance(value, list))

    def sql_filter(self, r: FromClause) -> ColumnElement[bool]:
        """The condition on a ``resource`` row (alias ``r``) for the caller to see it. Every value in
        it is a named bind parameter (:meth:`params`), so its form depends only on :meth:`shape`."""
        return self._filter(r, CURRENT)

    def history_filter(self, h: FromClause) -> ColumnElement[bool]:
        """The same decision on a ``resource_history`` row: on *that version's* own category and
        clients, so a version that was about another client (or in another category) than the
        current one is seen by whoever could see that version, and only by them."""
        return self._filter(h, VERSIONS)

    def _filter(self, r: FromClause, m: Membership) -> ColumnElement[bool]:
        public = r.c.category.in_(sorted(PUBLIC))
        kind = self.kind
        if kind == "admin" and self.principal.is_admin:
            cond: ColumnElement[bool] = r.c.category.in_(sorted(ADMIN_CATEGORIES))
        elif kind == "client":
            cond = or_(public, self._in_compartment(r, m))
        elif kind == "related" and self.delegated is not None:
            own = self._in_compartment(r, m)
            cats = true() if self.delegated.legal_representative else r.c.category.in_(self._p("acl_categories"))
            cond = or_(public, and_(own, cats))
        elif kind == "professional" and self.principal.organisation_ura:
            cond = or_(public, self._professional(r, m))
        else:
            cond = public
        if self.read_types is not None:
            cond = and_(cond, r.c.res_type.in_(self._p("acl_types")))
        return cond

    def _in_compartment(self, r: FromClause, m: Membership) -> ColumnElement[bool]:
        if not self.patient_ids:
            return false()
        c = m.table.alias("acl_comp")
        keyed = [c.c.client_key == r.c.client_key] if "client_key" in c.c else []
        # Current versions are matched on (client key, pid): a compartment row carries its resource's key,
        # so the key adds no condition here, and says which client's rows a distributed database joins
        # (deploy/CITUS.md). A version's own compartments (history_compartment) are placed by comp_id.
        return exists(
            select(c.c[m.key]).where(
                *keyed,
                c.c[m.key] == r.c[m.key],
                c.c.comp_type == "Patient",
                c.c.comp_id.in_(self._p("acl_patients")),
            )
        )

    def _professional(self, r: FromClause, m: Membership) -> ColumnElement[bool]:
        ura, now = self._p("acl_ura"), self._p("acl_now")
        c = m.table.alias("acl_comp")
        g = access_grant.alias("acl_grant")
        authored = _authored(r, ura, "acl_author")
        granted = exists(
            select(c.c[m.key])
            .select_from(c.join(g, g.c.patient_id == c.c.comp_id))
            .where(
                c.c[m.key] == r.c[m.key],
                c.c.comp_type == "Patient",
                g.c.org_ura == ura,
                g.c.category == r.c.category,
                g.c.start <= now,
                g.c.end > now,
            )
        )
        parts: list[ColumnElement[bool]] = [authored, granted, self._overdracht(r)]
        if self.emergency:
            parts.append(self._emergency(r, m))
        return or_(*parts)

    def _overdracht(self, r: FromClause) -> ColumnElement[bool]:
        """Access follows the overdracht Task's state (:mod:`hub.workflows.overdracht`): the receiver
        reads the Task, the advance notice before acceptance, the nursing handoff after; the rows
        are rewritten with every write of the Task, so a rejection or cancellation takes effect on
        the next request. (From completion the receiver is a care relation like any other.)"""
        w = overdracht_access.alias("acl_handover")
        return exists(
            select(w.c.source_pid)
            .where(
                w.c.org_ura == self._p("acl_ura"),
                w.c.target_type == r.c.res_type,
                w.c.target_id == r.c.res_id,
                w.c.active == true(),
            )
            .offset(0)  # per row, by key (as ``authored``): not a hash of all the organisation's handovers
        )

    def _emergency(self, r: FromClause, m: Membership) -> ColumnElement[bool]:
        """Break the glass: the data of clients for whom the organisation holds a break-glass grant
        in force (:mod:`hub.access.breakglass`), except where the client's consent says no.

        "No" is what :func:`hub.access.grants.decide` would answer for this organisation and
        category: an applicable objection (for treatment: no purpose, ``TREAT`` or ``ETREAT``) that no
        more specific applicable permission overrides. Both rule subqueries are correlated to this
        resource row and its compartment row explicitly (they are nested two levels deep).
        """
        c = m.table.alias("acl_glass")
        bg = break_glass.alias("acl_bg")
        deny = consent_rule.alias("acl_objection")
        permit = consent_rule.alias("acl_override")
        objection = exists(
            select(deny.c.source_pid)
            .where(
                deny.c.decision == "deny",
                *self._applies(deny, c, r),
                ~exists(
                    select(permit.c.source_pid)
                    .where(
                        permit.c.decision == "permit",
                        *self._applies(permit, c, r),
                        _specificity(permit) > _specificity(deny),
                    )
                    .correlate(deny, c, r)
                ),
            )
            .correlate(c, r)
        )
        now = self._p("acl_now")
        opened = exists(
            select(bg.c.id)
            .where(
                bg.c.org_ura == self._p("acl_ura"),
                bg.c.patient_id == c.c.comp_id,
                bg.c.start <= now,
                bg.c.end > now,
            )
            .correlate(c)
        )
        return and_(
            r.c.category.notin_(sorted(NEVER_FOR_PROFESSIONALS)),
            exists(
                select(c.c[m.key])
                .where(c.c[m.key] == r.c[m.key], c.c.comp_type == "Patient", opened, ~objection)
                .correlate(r)
            ),
        )

    def _applies(self, rule: FromClause, c: FromClause, r: FromClause) -> list[ColumnElement[bool]]:
        """A consent rule of the compartment's patient, in force, for this resource's category and
        this organisation (by URA or type), for (emergency) treatment."""
        now = self._p("acl_now")
        return [
            rule.c.patient_id == c.c.comp_id,
            or_(rule.c.category.is_(None), rule.c.category == r.c.category),
            or_(rule.c.actor_ura.is_(None), rule.c.actor_ura == self._p("acl_ura")),
            or_(rule.c.org_type.is_(None), rule.c.org_type.in_(self._p("acl_org_types"))),
            or_(rule.c.purpose.is_(None), rule.c.purpose.in_(sorted(EMERGENCY_PURPOSES))),
            rule.c.start <= now,
            rule.c.end > now,
        ]

    async def visible(self, conn: AsyncConnection, pids: list[int]) -> set[int]:
        """Which of these resources the caller may see (one statement)."""
        if not pids:
            return set()
        await settle(conn)  # the grants this transaction's writes owe
        r = resource
        rows = (await conn.execute(select(r.c.pid).where(r.c.pid.in_(pids), self.sql_filter(r)))).all()
        return {row[0] for row in rows}

    def target_facts(self, r: FromClause) -> list[ColumnElement[Any]]:
        """For a professional: what the write check of row ``r`` asks (:meth:`check_right`), read
        with the row: whether the organisation wrote it (:meth:`_authored`), and which of its
        clients the organisation is in care of (:meth:`_in_care`), as ids joined by spaces (ids
        have none). Both are the same conditions on the same bind values as the checks' own
        statements; :meth:`take_target_facts` remembers the yeses, as those checks do."""
        if not (self.kind == "professional" and self.principal.organisation_ura):
            return []
        ura, now = self._p("acl_ura"), self._p("acl_now")
        c = idx_compartment.alias("fact_comp")
        authored = _authored(r, ura, "fact_author")
        in_care = (
            select(JoinedIds(c.c.comp_id))
            .where(c.c.pid == r.c.pid, c.c.comp_type == "Patient", _in_care_condition(c.c.comp_id, ura, now))
            .scalar_subquery()
        )
        return [authored.label("fact_authored"), in_care.label("fact_in_care")]

    def take_target_facts(self, current: Stored, values: Sequence[Any]) -> None:
        """What :meth:`target_facts` found for ``current``, read in this transaction."""
        if not values:
            return
        authored, in_care = values
        if authored:
            self.authored.add(current.pid)
        if in_care:
            self.in_care.update(in_care.split(" "))

    async def check_read(self, conn: AsyncConnection, stored: Stored) -> None:
        """Not found unless visible: the caller learns nothing about resources it may not see."""
        if not await self.visible(conn, [stored.pid]):
            raise NotFound(f"{stored.res_type}/{stored.res_id} is not known", expression=stored.res_type)

    # -- writes ---------------------------------------------------------------------------------

    async def check_write(
        self,
        conn: AsyncConnection,
        res_type: str,
        category: str,
        compartments: list[str],
        current: Stored | None,
        interaction: str,
        resource: dict[str, Any] | None = None,
        validate: Callable[[], None] | None = None,
        *,
        seen: bool | None = None,
        guard: bool = False,
    ) -> Verdict | None:
        """May the caller write ``resource`` (content of ``category`` for these patients), replacing
        ``current`` (``resource`` None: delete it)? ``seen``: whether the caller may see ``current``,
        when the repository already decided it in this transaction (with the statement that read it).
        ``guard``: the store can make a create's statement conditional on the care relationship
        (:meth:`write_guard`) instead of asking for it first; any refusal found meanwhile asks first
        (:meth:`confirm_guard`), so the caller learns the same thing in the same order.

        ``compartments`` are the Patients the content is about, from its references as
        :func:`hub.fhir.references.resolve` reads them (an external reference concerns no client
        here, and yields no access facts either). In order: the target must be visible
        (:meth:`check_target`), then the caller's right to write (:meth:`check_right`), then
        integrity rules on the content (:meth:`check_content`), then ``validate`` (profile
        validation: only a caller allowed to write learns what a profile says). Whether this change is
        theirs to make (:mod:`hub.workflows`: ownership, the shared care plan, the overdracht state
        machine) the repository asks next, of the workflow rules it was built with
        (:data:`hub.store.policy.WriteRules`); their verdict says whom to record as the creator and
        which state change the write makes."""
        await self.check_target(conn, current, seen)
        self.care_unconfirmed = []
        await self.check_right(conn, res_type, category, compartments, current, interaction, resource, guard=guard)
        try:
            if resource is not None:
                await self.check_content(conn, res_type, resource)
            if validate is not None:
                validate()
        except Exception:
            await self.confirm_guard(conn)  # a refusal comes before what the content says
            raise
        return None

    def write_guard(self) -> tuple[str, dict[str, Any]] | None:
        """The condition (PostgreSQL SQL on named bind values, and their values) a create's write
        statement must meet, which :meth:`check_right` left to it: the organisation is in care of
        each client (:func:`_in_care_condition`, as :meth:`_in_care` asks it). None: nothing left."""
        if not self.care_unconfirmed:
            return None
        params = {
            "care_patients": list(self.care_unconfirmed),
            "care_ura": self.principal.organisation_ura,
            "care_now": self.now,
        }
        return _care_guard_sql(), params

    def guard_held(self) -> None:
        """The write statement met :meth:`write_guard`: remembered as :meth:`_in_care`'s yes is."""
        self.in_care.update(self.care_unconfirmed)
        self.care_unconfirmed = []

    async def confirm_guard(self, conn: AsyncConnection) -> None:
        """Ask what :meth:`write_guard` would have (Forbidden as :meth:`check_right` says it): before
        another refusal, or when the write statement did not meet the condition."""
        pending, self.care_unconfirmed = self.care_unconfirmed, []
        missing = [pid for pid in pending if not await self._in_care(conn, pid)]
        if missing:
            raise Forbidden(
                f"Organisation {self.principal.organisation_ura} has no care relationship with Patient/{missing[0]}"
            )

    async def check_target(self, conn: AsyncConnection, current: Stored | None, seen: bool | None = None) -> None:
        """Writing over a version the caller may not see is "not found", as reading it is; ``seen``
        is the decision already made with this filter (None: not yet made, made here)."""
        if current is None or current.deleted or seen:
            return
        if seen is None:
            await self.check_read(conn, current)
            return
        raise NotFound(f"{current.res_type}/{current.res_id} is not known", expression=current.res_type)

    async def check_right(
        self,
        conn: AsyncConnection,
        res_type: str,
        category: str,
        compartments: list[str],
        current: Stored | None,
        interaction: str,
        resource: dict[str, Any] | None = None,
        *,
        guard: bool = False,
    ) -> None:
        """The caller's right to write this category for these clients (``guard``: see :meth:`check_write`)."""
        p = self.principal
        if p.kind != "admin" and not p.allows_scope(res_type, interaction):  # type: ignore[arg-type]
            raise Forbidden(f"The token's scopes do not allow '{interaction}' on {res_type}")
        if self.emergency:
            raise Forbidden("Emergency access (break the glass) is for reading only")
        if res_type in HUB_WIDE_DEFINITIONS and not (p.kind == "admin" and p.is_admin):
            raise Forbidden(f"A {res_type} changes how the hub indexes every client's data: administrators write them")
        if p.kind == "admin":
            if not p.is_admin or category not in ADMIN_CATEGORIES:
                raise Forbidden(f"Administrators do not write {category} data")
            return
        if p.kind == "client":
            if category in PUBLIC and current is None and not compartments:
                raise Forbidden("Clients do not write reference data")
            if category not in CLIENT_WRITABLE or not compartments or not set(compartments) <= set(self.patient_ids):
                raise Forbidden(f"A client may write only their own {', '.join(sorted(CLIENT_WRITABLE))} data")
            return
        if p.kind == "related":
            d = self.delegated
            if d is None or not compartments or not set(compartments) <= set(d.patient_ids):
                raise Forbidden("Only data of the client you act for can be written")
            if not d.legal_representative and (category not in d.categories or category == "toestemming"):
                raise Forbidden(f"The client did not delegate writing {category} data to you")
            return
        if p.kind == "professional" and p.organisation_ura:
            ura = p.organisation_ura
            if category in PROFESSIONAL_NOT_WRITABLE:
                raise Forbidden(f"Professionals do not write {category} data; the client or an administrator does")
            if category in PUBLIC:
                if current is not None and not await self._authored(conn, current.pid):
                    raise Forbidden(f"{res_type}/{current.res_id} is reference data another organisation maintains")
                return
            if not compartments:
                return  # not client data: the author keeps it
            if res_type == "ServiceRequest" and category == "wmo" and await self._gemeente(conn):
                return  # a registered gemeente assigns Wmo care (toewijzing) to any resident
            if guard and current is None and not owed(conn):
                # (a create: no overdracht to answer; nothing owed that the relationship depends on)
                self.care_unconfirmed = [pid for pid in compartments if pid not in self.in_care]
                return
            missing = [pid for pid in compartments if not await self._in_care(conn, pid)]
            if missing and not await self._overdracht_receiver(conn, current):
                raise Forbidden(f"Organisation {ura} has no care relationship with Patient/{missing[0]}")
            return
        raise Forbidden("This caller may not write")

    async def _overdracht_receiver(self, conn: AsyncConnection, current: Stored | None) -> bool:
        """The receiver of an overdracht answers its Task before it is in care of the client."""
        if current is None or current.res_type != "Task" or current.deleted:
            return False
        w = overdracht_access
        row = (
            await conn.execute(
                select(w.c.source_pid)
                .where(
                    w.c.org_ura == self.principal.organisation_ura,
                    w.c.target_type == "Task",
                    w.c.target_id == current.res_id,
                    w.c.source_pid == current.pid,
                )
                .limit(1)
            )
        ).first()
        return row is not None

    async def check_content(self, conn: AsyncConnection, res_type: str, resource: dict[str, Any]) -> None:
        """Integrity rules that hold whoever writes: national identifiers are ASCII digits of the
        right length; one Patient per client (BSN), also when the existing one is hidden from the
        writer (the answer names no resource)."""
        for i, ident in enumerate(resource.get("identifier") or []):
            if not isinstance(ident, dict):
                continue
            value = ident.get("value")
            if ident.get("system") in NATIONAL_IDENTIFIERS and not (
                isinstance(value, str) and value.isascii() and value.isdigit()
            ):
                raise Unprocessable(
                    f"identifier {ident.get('system')} must consist of the digits 0-9",
                    expression=f"{res_type}.identifier[{i}].value",
                )
        if res_type != "Patient":
            return
        bsns = {
            str(i["value"])
            for i in resource.get("identifier") or []
            if isinstance(i, dict) and i.get("system") == BSN_SYSTEM and isinstance(i.get("value"), str)
        }
        if not bsns:
            return
        rows = await _BSN_TAKEN.fetch(conn, {"bsns": sorted(bsns), "own_id": resource.get("id") or ""})
        if rows:
            raise Conflict(
                "A client with this BSN is already registered; write to their Patient resource instead",
                code="duplicate",
                expression="Patient.identifier",
            )

    async def fact_grantor(self, conn: AsyncConnection, patient_id: str, res: dict[str, Any]) -> Grantor | None:
        """Whether this caller's write of a CareTeam/ServiceRequest/Task about ``patient_id`` may make
        care relations, and on whose right they then rest (see :func:`hub.access.facts.effective_relations`).
        None: the write stands, but brings nobody into the client's care."""
        p = self.principal
        if p.kind == "admin" and p.is_admin:
            return ("admin", p.subject)
        if p.kind == "client" and patient_id in self.patient_ids:
            return ("client", p.patient_bsn)
        if p.kind == "related" and self.delegated is not None:
            if self.delegated.legal_representative and patient_id in self.delegated.patient_ids:
                return ("person", p.person_id)
            return None  # a mantelzorger's delegated write never widens the care network
        if p.kind == "professional" and p.organisation_ura:
            if res.get("resourceType") == "ServiceRequest" and await self._gemeente(conn):
                return ("gemeente", p.organisation_ura)
            if await self._in_care(conn, patient_id):
                return ("org", p.organisation_ura)
        return None

    async def _gemeente(self, conn: AsyncConnection) -> bool:
        """Asked once per request (the registry is changed by administrators' own requests, never
        by a FHIR write, so a Bundle's entries all get the same answer)."""
        if self.is_gemeente is None:
            org = await organisations.get(conn, self.principal.organisation_ura)
            self.is_gemeente = org is not None and org.kind == "gemeente"
        return self.is_gemeente

    async def _authored(self, conn: AsyncConnection, pid: int) -> bool:
        """Whether the organisation wrote (a version of) resource ``pid``; a yes is remembered for the
        request, as :meth:`_in_care`'s."""
        if pid in self.authored:
            return True
        ura = self.principal.organisation_ura
        row = (
            await conn.execute(
                select(resource_author.c.pid).where(resource_author.c.pid == pid, resource_author.c.ura == ura)
            )
        ).first()
        if row is not None:
            self.authored.add(pid)
        return row is not None

    async def _in_care(self, conn: AsyncConnection, patient_id: str) -> bool:
        """An active care relationship, or the organisation registered the client (authored the Patient).
        A yes is remembered for the rest of the request (a Bundle writes many resources of one
        client); a no is asked again, since an earlier entry may have created the relationship."""
        if patient_id in self.in_care:
            return True
        found = await self._in_care_query(conn, patient_id)
        if found:
            self.in_care.add(patient_id)
        return found

    async def _in_care_query(self, conn: AsyncConnection, patient_id: str) -> bool:
        ura = self.principal.organisation_ura
        if ura and pg_batch.waiting_with_author(conn, "Patient", patient_id, ura):
            return True  # registered in this transaction, in a create still waiting to be written (the same answer)
        await settle(conn, [patient_id])  # the effective intervals this transaction's writes owe
        params = {"care_patient": patient_id, "care_ura": ura, "care_now": self.now}
        return bool((await conn.execute(_IN_CARE, params)).scalar())


def _authored(r: FromClause, ura: Any, alias: str) -> ColumnElement[bool]:
    """Whether organisation ``ura`` wrote resource ``r`` (``resource_author``). Checked per row
    (``OFFSET``: the planner may not hash the subquery): a hash would be built of every row the
    organisation ever wrote, on each statement, growing with the data."""
    author = resource_author.alias(alias)
    return exists(select(author.c.pid).where(author.c.pid == r.c.pid, author.c.ura == ura).offset(0))


#: Another current Patient with one of these BSNs (built once: a Bundle registering a client asks it);
#: ``own_id`` "" for a Patient without an id (no resource has the empty id). On the driver connection
#: in a write transaction (hub.store.direct).
_BSN_TAKEN = InTransaction(
    select(resource_table.c.res_id)
    .select_from(idx_token.join(resource_table, resource_table.c.pid == idx_token.c.pid))
    .where(
        idx_token.c.res_type == "Patient",
        idx_token.c.param == "identifier",
        idx_token.c.system == BSN_SYSTEM,
        idx_token.c.code.in_(bindparam("bsns", expanding=True)),
        resource_table.c.deleted == false(),
        resource_table.c.res_id != bindparam("own_id"),
    )
    .limit(1)
)


def _in_care_condition(
    patient_id: ColumnElement[str], ura: ColumnElement[str], now: ColumnElement[int]
) -> ColumnElement[bool]:
    """Whether organisation ``ura`` has an active care relationship with Patient ``patient_id`` at
    ``now``, or registered that client (authored the Patient)."""
    related = exists(
        select(care_relation.c.patient_id).where(
            care_relation.c.patient_id == patient_id,
            care_relation.c.org_ura == ura,
            care_relation.c.eff_start <= now,
            care_relation.c.eff_end > now,
        )
    )
    author = resource_author
    registered = exists(
        select(author.c.pid)
        .select_from(author.join(resource, resource.c.pid == author.c.pid))
        .where(author.c.ura == ura, resource.c.res_type == "Patient", resource.c.res_id == patient_id)
    )
    return or_(related, registered)


def _in_care_statement() -> Any:
    """:func:`_in_care_condition` for bind values ``care_patient``, ``care_ura``, ``care_now``: one
    statement for both, built once (a Bundle asks it for every client it writes about)."""
    patient_id: BindParameter[str] = bindparam("care_patient")
    ura: BindParameter[str] = bindparam("care_ura")
    now: BindParameter[int] = bindparam("care_now")
    return select(_in_care_condition(patient_id, ura, now))


_IN_CARE = _in_care_statement()


@functools.cache
def _care_guard_sql() -> str:
    """:func:`_in_care_condition` for every id of bind value ``care_patients`` (a text array), as
    PostgreSQL SQL with named bind values: the same condition on the same values as :data:`_IN_CARE`."""
    from sqlalchemy.dialects import postgresql

    care = _in_care_condition(
        literal_column("care_ids.care_patient"), literal_column(":care_ura"), literal_column(":care_now")
    )
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    condition = str(care.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    return (
        "NOT EXISTS (SELECT 1 FROM unnest(CAST(:care_patients AS text[])) AS care_ids(care_patient) "  # noqa: S608 (built from the schema; values bound)
        f"WHERE NOT ({condition}))"
    )


def _specificity(rule: FromClause) -> ColumnElement[int]:
    """:attr:`hub.access.grants.Rule.specificity` in SQL: organisation 2, type 1, anyone 0; +1 for a category."""
    actor = case((rule.c.actor_ura.is_not(None), 2), (rule.c.org_type.is_not(None), 1), else_=0)
    return actor + case((rule.c.category.is_not(None), 1), else_=0)


def _read_types(principal: Principal) -> frozenset[str] | None:
    """The resource types the token's scopes allow reading (None: all)."""
    if principal.kind == "admin":
        return None
    types: set[str] = set()
    for scope in parse_scopes(principal.scopes):
        if scope.query is None and ("r" in scope.permissions or "s" in scope.permissions):
            if scope.resource_type == "*":
                return None
            types.add(scope.resource_type)
    return frozenset(types)


def needs_facts(principal: Principal, emergency_reason: str | None) -> bool:
    """Whether building the policy reads the database (clients, related persons, emergencies)."""
    return principal.kind in ("client", "related") or bool(emergency_reason)


async def build_policy(
    conn: AsyncConnection | None,
    principal: Principal,
    *,
    emergency_reason: str | None = None,
    delegations: DelegationLookup | None = None,
    now: int | None = None,
) -> AccessPolicy:
    """The policy for one request; reads the facts that must be fresh (patients, delegations)."""
    now = now if now is not None else now_us()
    policy = AccessPolicy(principal, now, read_types=_read_types(principal))
    if emergency_reason and principal.kind != "professional":
        raise Forbidden("Only professionals can use emergency access (break the glass)")
    if conn is None:
        return policy
    if principal.kind == "client" and principal.patient_bsn:
        ids = await patient_ids_for_bsn(conn, [principal.patient_bsn])
        policy.patient_ids = tuple(ids.get(principal.patient_bsn, ()))
    elif principal.kind == "related" and principal.person_id and principal.acting_for:
        lookup = delegations or table_delegations
        found = [d for d in await lookup(conn, principal.person_id, now) if d.bsn == principal.acting_for]
        if found:
            ids = await patient_ids_for_bsn(conn, [principal.acting_for])
            categories = frozenset(c for d in found for c in d.categories)
            legal = any(d.relation in LEGAL_REPRESENTATIVE_ROLES for d in found)
            policy.delegated = Delegated(tuple(ids.get(principal.acting_for, ())), categories, legal)
            policy.patient_ids = policy.delegated.patient_ids
    elif principal.kind == "professional" and principal.organisation_ura and emergency_reason:
        org = await organisations.get(conn, principal.organisation_ura)
        if org is None or org.kind != "zorgaanbieder":
            raise Forbidden("Emergency access (break the glass) is for registered care providers only")
        policy.org_types = frozenset(org.types)
        policy.emergency_reason = emergency_reason
    return policy


async def build_policy_on(db: Database, principal: Principal, *, emergency_reason: str | None = None) -> AccessPolicy:
    """:func:`build_policy` with its facts read on a lookup connection of ``db``. A client's one fact
    (the Patients carrying their BSN, asked by every request of theirs) is read on the driver's
    path when the database allows it (:attr:`Database.direct_lookups`): the same statement, a
    fraction of the CPU of SQLAlchemy's execution."""
    if principal.kind == "client" and principal.patient_bsn and not emergency_reason and db.direct_lookups:
        bsn = principal.patient_bsn
        async with db.lookup_driver() as fairy:
            ids = await patients_by_identifier(DriverConnection(fairy, db.lookup_engine.dialect), BSN_SYSTEM, [bsn])
        policy = await build_policy(None, principal)
        policy.patient_ids = tuple(ids.get(bsn, ()))
        return policy
    async with db.lookup() as conn:
        return await build_policy(conn, principal, emergency_reason=emergency_reason)
