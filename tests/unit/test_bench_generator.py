"""The benchmark data generator: deterministic, valid transaction Bundles of realistic care networks."""

from __future__ import annotations

import json

import pytest

from bench.crud_chain import CHAIN, chain_resources
from bench.driver import latency_summary, percentile
from bench.generator import BSN, Network, elfproef_bsn, resolve_references
from bench.profiling import top_frames
from hub.fhir.parse import check_resource


def _dump(value: object) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def test_same_seed_same_bundles_and_independent_of_network_size() -> None:
    a, b = Network(1_000), Network(1_000)
    assert [_dump(a.client(i).bundle) for i in range(20)] == [_dump(b.client(i).bundle) for i in range(20)]
    assert _dump(list(a.registry_bundles())) == _dump(list(b.registry_bundles()))
    # client i's own content (names, BSN, team size) does not depend on how many clients there are
    small, large = Network(1_000).client(7), Network(10_000).client(7)
    assert small.bsn == large.bsn
    assert small.bundle["entry"][0]["resource"]["name"] == large.bundle["entry"][0]["resource"]["name"]
    assert len(small.team) == len(large.team)


def test_other_seed_other_data() -> None:
    assert _dump(Network(100, "x").client(3).bundle) != _dump(Network(100, "y").client(3).bundle)


def test_bsns_are_unique_and_pass_the_elfproef() -> None:
    bsns = [elfproef_bsn(i) for i in range(5_000)]
    assert len(set(bsns)) == len(bsns)
    for bsn in bsns[:500]:
        assert len(bsn) == 9
        total = sum(int(d) * w for d, w in zip(bsn[:8], range(9, 1, -1), strict=True)) - int(bsn[8])
        assert total % 11 == 0


def test_client_bundle_is_a_valid_transaction_with_the_whole_network() -> None:
    net = Network(1_000)
    for index in (0, 1, 2, 99, 500):
        client = net.client(index)
        bundle = client.bundle
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
        types = [e["resource"]["resourceType"] for e in bundle["entry"]]
        assert types[0] == "Patient" and types.count("Patient") == 1
        assert {"RelatedPerson", "CareTeam", "CarePlan", "Goal", "Consent", "Observation"} <= set(types)
        assert 1 <= types.count("RelatedPerson") <= 3
        assert 3 <= len(client.team) <= 8
        kinds = {p.org.kind for p in client.team}
        assert {"huisarts", "wijkverpleging", "thuiszorg"} <= kinds
        full_urls = [e["fullUrl"] for e in bundle["entry"]]
        assert len(set(full_urls)) == len(full_urls) and all(u.startswith("urn:uuid:") for u in full_urls)
        for i, entry in enumerate(bundle["entry"]):
            assert entry["request"] == {
                "method": "POST",
                "url": entry["resource"]["resourceType"],
                **({"ifNoneExist": entry["request"]["ifNoneExist"]} if "ifNoneExist" in entry["request"] else {}),
            }
            check_resource(entry["resource"], where=f"Bundle.entry[{i}].resource")
        check_resource(client.consent, "Consent")
        assert client.bundle["entry"][0]["resource"]["identifier"] == [{"system": BSN, "value": client.bsn}]
        # every internal reference points at an entry of the same Bundle
        refs = _references(bundle)
        internal = {r for r in refs if r.startswith("urn:uuid:")}
        assert internal <= set(full_urls)
        assert all(r.startswith(("urn:uuid:", "Organization?", "Practitioner?")) for r in refs)


def test_registry_bundles_are_valid_and_chunked() -> None:
    net = Network(3_000)
    bundles = list(net.registry_bundles(chunk=200))
    assert len(bundles) > 1 and all(len(b["entry"]) <= 200 for b in bundles)
    for b in bundles:  # every urn:uuid reference resolves inside its own Bundle
        assert {r for r in _references(b) if r.startswith("urn:uuid:")} <= {e["fullUrl"] for e in b["entry"]}
    entries = [e for b in bundles for e in b["entry"]]
    orgs = sum(len(v) for v in net.organisations.values())
    pros = sum(len(v) for v in net.professionals.values())
    assert len(entries) == orgs + 2 * pros
    for entry in entries[:: max(1, len(entries) // 60)]:
        check_resource(entry["resource"])
    uras = [o.ura for v in net.organisations.values() for o in v]
    assert len(set(uras)) == len(uras)


def test_organisations_scale_with_clients() -> None:
    assert len(Network(100_000).organisations["huisarts"]) == 1_000
    assert len(Network(1_000).organisations["huisarts"]) == 10
    assert len(Network(10).organisations["gemeente"]) == 2


def test_resolve_references_rewrites_only_known_conditionals() -> None:
    client = Network(100).client(4)
    gp = client.team[0]
    mapping = {gp.conditional: "Practitioner/abc", gp.org.conditional: "Organization/o1"}
    resolved = resolve_references(client.bundle, mapping)
    refs = _references(resolved)
    assert "Practitioner/abc" in refs and gp.conditional not in refs
    assert _references(client.bundle) != refs  # the input is not changed
    assert gp.conditional in _references(client.bundle)


def test_crud_chain_resources_are_valid() -> None:
    resources = chain_resources("t1")
    assert [r["resourceType"] for r in resources] == [t for t, _ in CHAIN]
    assert len(resources) == 9
    for r in resources:
        check_resource(r)


def test_percentiles() -> None:
    values = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    assert percentile(values, 50) == pytest.approx(0.050)
    assert percentile(values, 99) == pytest.approx(0.099)
    assert percentile([], 50) == 0.0
    summary = latency_summary(values)
    assert summary["p50_ms"] == 50.0 and summary["p95_ms"] == 95.0 and summary["max_ms"] == 100.0


def test_top_frames_from_collapsed_stacks() -> None:
    collapsed = (
        "serve (hub/cli.py:36);search (hub/api/handlers/search.py:50);Column.__init__ (sqlalchemy/sql/schema.py:9) 30\n"
        "serve (hub/cli.py:36);search (hub/api/handlers/search.py:49) 10\n"
        "not a stack line\n"
    )
    top = top_frames(collapsed)
    assert top["samples"] == 40
    assert top["own"][0] == ("Column.__init__ (sqlalchemy/sql/schema.py:9)", 75.0)
    assert dict(top["own_by_package"]) == {"sqlalchemy": 75.0, "hub": 25.0}
    # inclusive: per hub function (lines merged), entry points left out
    assert top["inclusive"] == [("search (hub/api/handlers/search.py)", 100.0)]


def _references(value: object) -> list[str]:
    out: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "reference" and isinstance(v, str):
                out.append(v)
            else:
                out.extend(_references(v))
    elif isinstance(value, list):
        for v in value:
            out.extend(_references(v))
    return out


def test_overdrachten_start_as_the_hub_rules_say() -> None:
    """Every overdracht Task starts 'requested', in the past, with its advance notice (a Composition
    of the same Bundle) as input: what the hub's overdracht rules accept from a sender."""
    from hub.workflows.overdracht import ADVANCE_NOTICE

    seen = 0
    for i in range(60):
        entries = Network(100).client(i).bundle["entry"]
        by_url = {e["fullUrl"]: e["resource"] for e in entries}
        for e in entries:
            task = e["resource"]
            if task["resourceType"] != "Task":
                continue
            seen += 1
            assert task["status"] == "requested"
            assert task["authoredOn"] < "2026-01-01"
            (notice,) = [i for i in task["input"] if i["type"]["coding"][0]["code"] == ADVANCE_NOTICE[1]]
            assert by_url[notice["valueReference"]["reference"]]["resourceType"] == "Composition"
    assert seen > 0
