"""The people's side of Zorgnet Hub: web apps that are ordinary clients of the hub's public HTTP API.

- :mod:`apps.pgo`: the PGO for clients and their mantelzorgers (Dutch, large type, phone first);
- :mod:`apps.admin`: the administrator's console;
- :mod:`apps.common`: what both share (OAuth client, encrypted session, CSRF, security headers,
  the hub client and plain-Dutch error messages).

Nothing here imports the ``hub`` package: the apps talk HTTP only (a test enforces it).
"""
