"""The FHIR standard as the hub uses it, without I/O: parsing JSON/XML (:mod:`parse`, :mod:`xml`,
:mod:`jsonio`), element types (:mod:`typeinfo`), errors as OperationOutcome (:mod:`errors`), search
parameters and index extraction (:mod:`searchparams`, :mod:`extract`, :mod:`fhirpath_fast`,
:mod:`normalize`, :mod:`compartment`), search queries (:mod:`query`), patches (:mod:`patch`),
Bundles (:mod:`bundles`), result shaping (:mod:`shaping`), data categories (:mod:`categories`) and
profile validation (:mod:`validation`)."""

__all__: list[str] = []
