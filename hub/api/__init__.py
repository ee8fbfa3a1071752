"""HTTP only: the FHIR endpoint (:mod:`routes`), one handler per interaction (:mod:`handlers`),
``$operations`` (:mod:`operations`), content negotiation (:mod:`negotiate`), errors as
OperationOutcome (:mod:`errors`) and the per-request audit trail (:mod:`auditing`)."""

__all__: list[str] = []
