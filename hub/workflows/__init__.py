"""Workflow rules: who may change what, and how an overdracht moves, asked by the repository after the
one access decision (:meth:`hub.access.policy.AccessPolicy.check_write`) allowed a caller's write (every
write, Bundle entry, PATCH and DELETE; :func:`hub.workflows.check.write_rules`), and what an overdracht's
receiver may read by the Task's state (a part of :meth:`~hub.access.policy.AccessPolicy.sql_filter`).

- :mod:`~hub.workflows.overdracht`: the eOverdracht Task state machine (pure rules).
- :mod:`~hub.workflows.careplan`: the shared care plan's parts per party (pure rules).
- :mod:`~hub.workflows.check`: one write's check (ownership, then the two above), answering a
  :class:`~hub.workflows.check.WriteVerdict` with the :class:`~hub.workflows.check.StateChange`.
- :mod:`~hub.workflows.parties`: callers and references as parties.
- :mod:`~hub.workflows.derive`, :mod:`~hub.workflows.tables`: the facts kept with the writes.
- :mod:`~hub.workflows.refusal`: the refusals (403/409/422 with the rule and the allowed states).
"""
