"""``redact_each`` (the query parsed once for a record per client) gives each client exactly what
``redact`` with the other clients gives."""

from __future__ import annotations

from urllib.parse import urlencode

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.audit.trail import redact, redact_each

_IDS = st.sampled_from(["p1", "p12", "abc", "x-9", "Patient", "12345678", ""])
_VALUES = st.one_of(
    _IDS.map(lambda i: f"Patient/{i}"),
    _IDS,
    st.sampled_from(["active", "http://fhir.nl/fhir/NamingSystem/bsn|999993653", "ge2025-01-01", "a,b"]),
    st.text(max_size=12),
)
_QUERIES = st.lists(st.tuples(st.sampled_from(["subject", "patient", "status", "_id", "code"]), _VALUES), max_size=5)


@settings(max_examples=300, deadline=None)
@given(_QUERIES, st.lists(_IDS, max_size=6))
def test_redact_each_is_redact_of_the_others_for_each_client(params: list[tuple[str, str]], ids: list[str]) -> None:
    query = urlencode(params)
    patients = sorted(set(ids))
    each = redact_each(query, patients)
    assert set(each) == set(patients)
    for p in patients:
        assert each[p] == redact(query, [o for o in patients if o != p])


def test_a_query_naming_two_clients_hides_each_from_the_other() -> None:
    each = redact_each("subject=Patient/pa1&_id=pb2,pc3&status=active", ["pa1", "pb2"])
    assert each["pa1"] == "subject=Patient%2Fpa1&_id=%5Bredacted%5D&status=active"
    assert each["pb2"] == "subject=%5Bredacted%5D&_id=pb2%2Cpc3&status=active"
