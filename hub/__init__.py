"""Zorgnet Hub: a FHIR R4 care-network hub (nl-core/zib2020), consent-based and audited.

Where things live: :mod:`hub.api` (HTTP), :mod:`hub.fhir` (the standard, no I/O), :mod:`hub.store`
(storage and search SQL), :mod:`hub.access` (who may do what), :mod:`hub.audit` (the access log).
Nothing happens at import time; :func:`hub.app.create_app` builds an app from settings.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
