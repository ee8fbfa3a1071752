"""The outbox and subscription tables, on the hub's one ``metadata`` (migration 0004).

- ``outbox_event``: one row per resource write, appended in the write's transaction; removed once
  the dispatcher has copied it to the subscriptions whose topic it matches. The store writes it, so it
  is defined in :mod:`hub.store.tables` (and named here too).
- ``subscription_state``: the delivery state of each ``Subscription`` resource (its parsed
  channel, topic and filters, the owner it is delivered as, the event counters, failures, the
  lease a worker holds while delivering).
- ``subscription_event``: the events of one subscription, numbered 1, 2, 3 ... in dispatch order
  (the IG's ``eventNumber``); kept for ``$events`` replay.

Instants are integer microseconds since the Unix epoch, as elsewhere.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, PrimaryKeyConstraint, String, Table, Text

from hub.store.tables import metadata, outbox_event

subscription_state = Table(
    "subscription_state",
    metadata,
    Column("sub_id", String(64), primary_key=True),
    Column("topic", String(200), nullable=False),
    # JSON list of [parameter, value] filter pairs.
    Column("filters", Text, nullable=False, default="[]"),
    # rest-hook | websocket
    Column("channel", String(16), nullable=False),
    Column("endpoint", Text, nullable=True),
    # JSON list of "Name: value" header lines sent with every rest-hook POST.
    Column("headers", Text, nullable=False, default="[]"),
    # empty | id-only | full-resource
    Column("payload", String(16), nullable=False),
    Column("heartbeat", Integer, nullable=False, default=0),
    Column("timeout", Integer, nullable=False, default=10),
    Column("max_count", Integer, nullable=False, default=100),
    # JSON: the principal notifications are delivered as (see hub.events.subscriptions.owner_json).
    Column("owner", Text, nullable=False),
    # Who may manage it: "ura:<URA>", "bsn:<BSN>", "person:<id>:<BSN>", "admin:<subject>".
    Column("owner_key", String(200), nullable=False),
    # requested | active | error | off
    Column("status", String(16), nullable=False),
    Column("end", BigInteger, nullable=False),
    # The last event number assigned, and the last one delivered (acknowledged by the receiver).
    Column("events_total", BigInteger, nullable=False, default=0),
    Column("delivered", BigInteger, nullable=False, default=0),
    Column("failures", Integer, nullable=False, default=0),
    Column("next_attempt", BigInteger, nullable=False, default=0),
    Column("last_sent", BigInteger, nullable=False, default=0),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", BigInteger, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
    Column("ws_token_hash", String(64), nullable=True),
    Column("ws_token_expires", BigInteger, nullable=False, default=0),
    Column("created", BigInteger, nullable=False),
    Index("ix_subscription_state_due", "status", "next_attempt"),
    Index("ix_subscription_state_owner", "owner_key"),
)

subscription_event = Table(
    "subscription_event",
    metadata,
    Column("sub_id", String(64), nullable=False),
    Column("number", BigInteger, nullable=False),
    Column("recorded", BigInteger, nullable=False),
    Column("pid", BigInteger, nullable=False),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("change", String(8), nullable=False),
    Column("patients", Text, nullable=False, default=""),
    Column("old_status", String(32), nullable=True),
    Column("new_status", String(32), nullable=True),
    PrimaryKeyConstraint("sub_id", "number", name="pk_subscription_event"),
)

__all__ = ["outbox_event", "subscription_event", "subscription_state"]
