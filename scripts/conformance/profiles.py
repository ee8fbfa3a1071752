"""Profile checks for the TestScript runner's ``validateProfileId``: the adapter's own check of its STU3
profiles (:class:`adapters.wijkverpleging.profiles.ProfileCheck`: the STU3 structure and the differential of
the eOverdracht 4.0 and nl-core STU3 profiles it ships; no terminology, invariants or type profiles).

The runner and the adapter's STU3 facade use the same check, so what the facade claims in ``meta.profile``
(:func:`adapters.wijkverpleging.profiles.claim_profiles`) is what this check passes, and a profile the
adapter does not ship is checked for the STU3 structure only; what it does not check is not reported as
checked.
"""

from __future__ import annotations

from adapters.wijkverpleging.profiles import ProfileCheck

__all__ = ["ProfileCheck"]
