"""Notifications: the transactional outbox, topic-based Subscriptions (R4 Subscriptions Backport IG)
and their delivery.

- :mod:`hub.events.outbox` appends one event row in the transaction of every resource write;
- :mod:`hub.events.topics` defines the topics (``overdracht``, ``careplan``, ``acp``, ``consent``,
  ``wmo``) and which events they cover;
- :mod:`hub.events.subscriptions` is the FHIR side: ``Subscription`` create/read/search/update/delete,
  ``$status``, ``$events`` and ``$get-ws-binding-token`` (their HTTP shape: :mod:`hub.api.subscriptions`);
- :mod:`hub.events.delivery` fans events out to subscriptions and delivers them (at least once,
  in order per subscription, access decided at delivery time); :mod:`hub.events.channels` holds
  the rest-hook and websocket transports;
- :mod:`hub.events.metrics` counts outcomes.
"""
