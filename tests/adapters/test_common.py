"""adapters.common: credentials, retries, idempotent upserts (httpx MockTransport), safe XML, the harness."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from adapters.common import (
    ClientCredentials,
    HubClient,
    HubError,
    HubUnavailable,
    RetryPolicy,
    UnsafeXml,
    XmlLimits,
    assert_fields,
    get_path,
    parse_xml,
)
from adapters.common.harness import MISSING

TOKEN_URL = "http://hub.test/auth/token"  # noqa: S105
FAST = RetryPolicy(attempts=4, base_delay=0.001, max_delay=0.002)


class FakeHub:
    """A tiny FHIR server behind httpx.MockTransport: tokens, failures on demand, one resource store."""

    def __init__(self, key: ECKey) -> None:
        self.key = key
        self.tokens = 0
        self.fail_next: list[int | Exception] = []
        self.store: dict[str, dict[str, Any]] = {}
        self.requests: list[httpx.Request] = []
        self.valid_token = "t1"  # noqa: S105
        self.token_fail_next: list[int | Exception] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/auth/token":
            form = dict(httpx.QueryParams(request.content.decode()))
            claims = jwt.decode(form["client_assertion"], self.key).claims
            assert claims["iss"] == claims["sub"] == "gemeente" and claims["aud"] == TOKEN_URL and claims["jti"]
            if self.token_fail_next:
                failure = self.token_fail_next.pop(0)
                if isinstance(failure, Exception):
                    raise failure
                return httpx.Response(failure, json={"error": "temporarily_unavailable"})
            self.tokens += 1
            return httpx.Response(200, json={"access_token": self.valid_token, "expires_in": 300})
        if self.fail_next:
            failure = self.fail_next.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return httpx.Response(
                failure, json={"resourceType": "OperationOutcome", "issue": [{"diagnostics": "boom"}]}
            )
        if request.headers.get("Authorization") != f"Bearer {self.valid_token}":
            return httpx.Response(401)
        if request.method == "GET":
            ident = request.url.params.get("identifier", "")
            hits = [
                r for r in self.store.values() if any(f"{i['system']}|{i['value']}" == ident for i in r["identifier"])
            ]
            return httpx.Response(200, json={"resourceType": "Bundle", "entry": [{"resource": r} for r in hits]})
        body = json.loads(request.content)
        if request.method == "POST":
            body |= {"id": str(len(self.store) + 1), "meta": {"versionId": "1"}}
            self.store[body["id"]] = body
            return httpx.Response(201, json=body)
        current = self.store[body["id"]]
        assert request.headers["If-Match"] == f'W/"{current["meta"]["versionId"]}"'
        body["meta"] = {"versionId": str(int(current["meta"]["versionId"]) + 1)}
        self.store[body["id"]] = body
        return httpx.Response(200, json=body)


@pytest.fixture
def fake() -> FakeHub:
    return FakeHub(ECKey.generate_key("P-256", private=True))


def _client(fake: FakeHub) -> HubClient:
    creds = ClientCredentials("gemeente", fake.key, TOKEN_URL)
    return HubClient(
        "http://hub.test/fhir", creds, http=httpx.AsyncClient(transport=httpx.MockTransport(fake)), retry=FAST
    )


async def test_token_is_fetched_once_and_refreshed_after_a_401(fake: FakeHub) -> None:
    hub = _client(fake)
    await hub.search("Patient", {"identifier": "s|1"})
    await hub.search("Patient", {"identifier": "s|1"})
    assert fake.tokens == 1
    fake.valid_token = "t2"  # the hub rotated its keys: the cached token is refused once  # noqa: S105
    await hub.search("Patient", {"identifier": "s|1"})
    assert fake.tokens == 2


async def test_retries_5xx_and_connection_errors_then_gives_up(fake: FakeHub) -> None:
    hub = _client(fake)
    fake.fail_next = [503, httpx.ConnectError("refused"), 502]
    assert await hub.search("Patient", {"identifier": "s|1"}) == []
    fake.fail_next = [500, 500, 500, 500]
    with pytest.raises(HubUnavailable):
        await hub.search("Patient", {"identifier": "s|1"})
    fake.fail_next = [422]
    with pytest.raises(HubError) as err:
        await hub.search("Patient", {"identifier": "s|1"})
    assert err.value.status == 422 and "boom" in str(err.value)


async def test_a_token_endpoint_busy_for_a_moment_is_retried_like_any_request(fake: FakeHub) -> None:
    """A hub under load may answer its token endpoint 503 (database busy) or drop the connection: the
    adapter waits and asks again instead of failing the message it was working on."""
    hub = _client(fake)
    fake.token_fail_next = [503, httpx.ConnectError("refused")]
    assert await hub.search("Patient", {"identifier": "s|1"}) == []
    assert fake.tokens == 1
    fake.valid_token = "t2"  # noqa: S105
    fake.token_fail_next = [503, 503, 503, 503]
    with pytest.raises(HubUnavailable):
        await hub.search("Patient", {"identifier": "s|1"})
    fake.token_fail_next = [400]
    with pytest.raises(HubError) as err:
        await hub.search("Patient", {"identifier": "s|1"})
    assert err.value.status == 400


async def test_upsert_creates_updates_and_leaves_equal_content_alone(fake: FakeHub) -> None:
    hub = _client(fake)
    patient = {"resourceType": "Patient", "identifier": [{"system": "s", "value": "1"}], "gender": "male"}
    assert (await hub.upsert(patient, "s", "1")).action == "created"
    post = fake.requests[-1]
    assert post.headers["If-None-Exist"] == "identifier=s|1"
    assert (await hub.upsert(patient, "s", "1")).action == "unchanged"
    changed = await hub.upsert({**patient, "gender": "female"}, "s", "1")
    assert changed.action == "updated" and changed.resource["meta"]["versionId"] == "2"
    assert len(fake.store) == 1


def test_parse_xml_refuses_entities_dtds_size_and_depth() -> None:
    assert parse_xml(b"<a><b>x</b></a>").tag == "a"
    for data in (
        b'<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>',
        b"<!doctype a><a/>",
        b'<?xml version="1.0"?><!DOCTYPE a SYSTEM "http://example.com/a.dtd"><a/>',
    ):
        with pytest.raises(UnsafeXml, match="DOCTYPE"):
            parse_xml(data)
    with pytest.raises(UnsafeXml, match="limit"):
        parse_xml(b"<a>" + b"x" * 200 + b"</a>", XmlLimits(max_bytes=100))
    with pytest.raises(UnsafeXml, match="deeper"):
        parse_xml(b"<a>" * 40 + b"</a>" * 40)
    with pytest.raises(UnsafeXml, match="elements"):
        parse_xml(b"<a>" + b"<b/>" * 50 + b"</a>", XmlLimits(max_elements=10))
    with pytest.raises(UnsafeXml, match="well-formed"):
        parse_xml(b"<a><b></a>")


def test_harness_paths_and_mismatch_report() -> None:
    res = {"identifier": [{"system": "a", "value": "1"}, {"system": "b", "value": "2"}], "name": [{"given": ["T"]}]}
    assert get_path(res, "identifier[system=b].value") == "2"
    assert get_path(res, "name[0].given[-1]") == "T"
    assert get_path(res, "name[3].given") is MISSING
    assert_fields(res, {"identifier[1].value": "2", "gender": MISSING})
    with pytest.raises(AssertionError) as err:
        assert_fields(res, {"identifier[system=a].value": "9", "gender": "male"})
    assert "identifier[system=a].value: expected '9', got '1'" in str(err.value)
    assert "gender: expected 'male', got <missing>" in str(err.value)
