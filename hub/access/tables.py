"""Tables of the embedded authorization server, on the hub's one ``metadata`` (one Alembic history).

- ``oauth_client``: registered applications. ``kind`` is ``system`` (a professional system or
  backend service: client_credentials with a private_key_jwt assertion, verified against
  ``jwks``), ``pgo`` (a personal health app: authorization_code + PKCE to one of
  ``redirect_uris``) or ``admin``. ``organisation_ura`` is the organisation a system client acts
  for; it comes from the registration, never from the request. ``allowed_scopes`` is the
  space-separated upper bound of what the client can be granted.
- ``oauth_jti``: client-assertion ids already used (replay protection), kept until the
  assertion would have expired anyway.
- ``oauth_code``: authorization codes, stored by SHA-256 hash, single use (``used``).
- ``person``: people who log in to a PGO (the development login stands in for DigiD).
- ``delegation``: which clients a person may act for, in which role and for which data
  categories. The default :class:`~hub.access.clients.DelegationLookup` reads it; the consent
  layer may supply its own.

Instants are integer microseconds since the Unix epoch (UTC), as in the store's tables.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, String, Table, Text, true

from hub.store.tables import PidType, metadata

oauth_client = Table(
    "oauth_client",
    metadata,
    Column("client_id", String(200), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("name", String(200), nullable=False, default=""),
    Column("organisation_ura", String(16), nullable=True),
    # Public JWK Set (JSON text) the client's assertions are verified with.
    Column("jwks", Text, nullable=True),
    # JSON array of exact redirect URIs (pgo clients).
    Column("redirect_uris", Text, nullable=False, default="[]"),
    Column("allowed_scopes", Text, nullable=False, default=""),
    Column("active", Boolean, nullable=False, default=True),
    Column("created", BigInteger, nullable=False),
)

oauth_jti = Table(
    "oauth_jti",
    metadata,
    Column("client_id", String(200), primary_key=True),
    Column("jti", String(255), primary_key=True),
    Column("expires", BigInteger, nullable=False),
    Index("ix_oauth_jti_expires", "expires"),
)

oauth_code = Table(
    "oauth_code",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("client_id", String(200), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("code_challenge", String(128), nullable=False),
    # JSON: the grant the person approved (kind, person, patient_bsn, acting_for, relation, scope).
    Column("grant", Text, nullable=False),
    Column("expires", BigInteger, nullable=False),
    Column("used", Boolean, nullable=False, default=False),
    Index("ix_oauth_code_expires", "expires"),
)

person = Table(
    "person",
    metadata,
    Column("person_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False, default=""),
    # The person's own BSN: present when they may act for themself as a client.
    Column("bsn", String(9), nullable=True),
    # A disabled person can no longer log in (kept for the audit trail's sake).
    Column("active", Boolean, nullable=False, default=True, server_default=true()),
)

delegation = Table(
    "delegation",
    metadata,
    Column("id", PidType, primary_key=True, autoincrement=True),
    Column("person_id", String(64), nullable=False),
    Column("patient_bsn", String(9), nullable=False),
    # RelatedPerson role code, e.g. 24 (wettelijk vertegenwoordiger), 100001 (mantelzorger).
    Column("role_code", String(16), nullable=False),
    # JSON array of data categories, e.g. ["agenda", "zorgplan"].
    Column("categories", Text, nullable=False, default="[]"),
    Column("period_start", BigInteger, nullable=True),
    Column("period_end", BigInteger, nullable=True),
    Column("active", Boolean, nullable=False, default=True),
    # The Consent resource this delegation is derived from (NULL for rows added directly).
    Column("source_pid", BigInteger, nullable=True),
    # The client's Patient id (resolved from patient_bsn when the row is written; hub.store.clientkey).
    Column("client_key", String(64), nullable=False),
    Index("ix_delegation_person", "person_id", "patient_bsn"),
    Index("ix_delegation_patient", "patient_bsn"),
    Index("ix_delegation_source", "source_pid"),
)

# -- Derived access facts ----------------------------------------------------------------------
# Kept up to date in the same transaction as the resource writes that imply them (hub.access.facts),
# so that a search joins one indexed table instead of re-reading CareTeams and Consents.

#: Organisations that wrote (some version of) a resource: they keep access to what they wrote.
resource_author = Table(
    "resource_author",
    metadata,
    Column("pid", BigInteger, primary_key=True),
    Column("ura", String(16), primary_key=True),
    # The resource's client key, copied from resource.client_key in the same transaction.
    Column("client_key", String(64), nullable=False),
    Index("ix_resource_author_ura", "ura", "pid"),
)

#: A care relationship: organisation ``org_ura`` takes part in the care of Patient ``patient_id``,
#: because of ``source_pid`` (a CareTeam participation, an active ServiceRequest performer, the
#: owner of an open overdracht Task), during [start, end). ``grantor_kind``/``grantor`` name the
#: party whose write made it (``org`` + URA, ``person`` + person id for a legal representative;
#: ``client``, ``admin``, ``gemeente`` + URA and ``hub`` are entitled on their own); the relation
#: holds only while that party's own right does, which ``recompute`` writes as [eff_start, eff_end)
#: (NULL: not in force at all).
care_relation = Table(
    "care_relation",
    metadata,
    Column("source_pid", BigInteger, nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("org_ura", String(16), nullable=False),
    Column("start", BigInteger, nullable=False),
    Column("end", BigInteger, nullable=False),
    Column("grantor_kind", String(16), nullable=False, default="hub"),
    Column("grantor", String(64), nullable=True),
    Column("eff_start", BigInteger, nullable=True),
    Column("eff_end", BigInteger, nullable=True),
    Index("ix_care_relation_patient", "patient_id", "org_ura"),
    Index("ix_care_relation_source", "source_pid"),
)

#: Who wrote each care-relation source (CareTeam, ServiceRequest, Task) entitled to make relations,
#: kept also while the source names no known organisation yet: when that organisation is
#: registered later, the source's relations are derived again on the same writer's right.
care_source = Table(
    "care_source",
    metadata,
    Column("source_pid", BigInteger, primary_key=True),
    Column("grantor_kind", String(16), nullable=False),
    Column("grantor", String(64), nullable=True),
    # The source resource's client key, copied from resource.client_key in the same transaction.
    Column("client_key", String(64), nullable=False),
)

#: One provision of a privacy Consent: permit/deny for a category (NULL: all), an organisation
#: (URA), an organisation type, a purpose of use, during [start, end).
consent_rule = Table(
    "consent_rule",
    metadata,
    Column("source_pid", BigInteger, nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("decision", String(8), nullable=False),
    Column("category", String(32), nullable=True),
    Column("actor_ura", String(16), nullable=True),
    Column("org_type", String(32), nullable=True),
    Column("purpose", String(32), nullable=True),
    Column("start", BigInteger, nullable=False),
    Column("end", BigInteger, nullable=False),
    Index("ix_consent_rule_patient", "patient_id"),
    Index("ix_consent_rule_source", "source_pid"),
)

#: The outcome of relations + consent rules: organisation ``org_ura`` may read ``category`` data of
#: Patient ``patient_id`` during [start, end). Recomputed for a patient whenever one of its
#: relations or rules changes; this is the table every search joins.
access_grant = Table(
    "access_grant",
    metadata,
    Column("patient_id", String(64), nullable=False),
    Column("org_ura", String(16), nullable=False),
    Column("category", String(32), nullable=False),
    Column("start", BigInteger, nullable=False),
    Column("end", BigInteger, nullable=False),
    Index("ix_access_grant_org", "org_ura", "patient_id", "category"),
    Index("ix_access_grant_patient", "patient_id"),
)

#: The organisation registry, kept by administrators (``hub orgs``, ``/admin/organisations``): which
#: URAs are known organisations, of which kind (``zorgaanbieder``, ``gemeente``) and which
#: organisation types (e.g. Z3 huisarts). Consent rules by organisation type and break-the-glass
#: trust this table, never an Organization resource a caller wrote.
organisation = Table(
    "organisation",
    metadata,
    Column("ura", String(16), primary_key=True),
    Column("name", String(200), nullable=False, default=""),
    Column("kind", String(16), nullable=False, default="zorgaanbieder"),
    # JSON array of organisation type codes (urn:oid:2.16.840.1.113883.2.4.15.1060).
    Column("types", Text, nullable=False, default="[]"),
    Column("active", Boolean, nullable=False, default=True),
    Column("created", BigInteger, nullable=False),
)

#: Emergency access grants (break the glass): organisation ``org_ura`` may read Patient
#: ``patient_id``'s data the client did not object to during [start, end), for the stated reason.
break_glass = Table(
    "break_glass",
    metadata,
    Column("id", PidType, primary_key=True, autoincrement=True),
    Column("org_ura", String(16), nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("reason_code", String(32), nullable=False),
    Column("reason_text", Text, nullable=False),
    Column("practitioner", String(64), nullable=True),
    Column("start", BigInteger, nullable=False),
    Column("end", BigInteger, nullable=False),
    Index("ix_break_glass_org", "org_ura", "patient_id", "end"),
)

#: What the receiver of an overdracht Task may read because of that Task, by state
#: (:func:`hub.workflows.overdracht.access_scopes`, written by :mod:`hub.workflows.derive`): the Task
#: (``task``), the advance notice with what it references and the client's Patient (``notice``), the
#: nursing handoff with what its sections reference (``handoff``). Rows for documents not (yet) opened by
#: the state are kept with ``active`` false, so that a later write of such a Composition finds its Tasks.
#: Rewritten in the transaction of every write of the Task or of a Composition it names.
overdracht_access = Table(
    "overdracht_access",
    metadata,
    Column("source_pid", BigInteger, nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("org_ura", String(16), nullable=False),
    Column("task_status", String(32), nullable=False),
    Column("target_type", String(64), nullable=False),
    Column("target_id", String(64), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("active", Boolean, nullable=False),
    Index("ix_overdracht_access_org", "org_ura", "target_type", "target_id"),
    Index("ix_overdracht_access_source", "source_pid"),
    Index("ix_overdracht_access_target", "target_type", "target_id"),
    Index("ix_overdracht_access_patient", "patient_id"),
)

__all__ = [
    "access_grant",
    "break_glass",
    "care_relation",
    "care_source",
    "consent_rule",
    "delegation",
    "oauth_client",
    "oauth_code",
    "oauth_jti",
    "organisation",
    "overdracht_access",
    "person",
    "resource_author",
]
