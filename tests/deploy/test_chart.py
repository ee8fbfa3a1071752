"""The Helm chart renders (with :mod:`tests.deploy.helmlite`, no helm binary here) and every manifest is
valid against the Kubernetes OpenAPI schemas (kubernetes-validate, offline, strict: unknown fields fail)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from hub.ops.safety import production_problems
from hub.settings import Settings
from tests.deploy.helmlite import TemplateError, manifests, render_chart

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "zorgnet-hub"
#: The oldest Kubernetes the chart claims (Chart.yaml kubeVersion) that the schema package has, and the newest.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
SECRETS = {
    "database": {"url": "postgresql+asyncpg://hub:pw@db.internal:5432/hub"},
    "keys": {"jwks": '{"keys": []}', "auditKeyring": '{"keys": []}'},
}


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return manifests(render_chart(CHART, {**SECRETS, **(values or {})}, release="hub"))


def by_kind(objs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(
    "values",
    [
        {},
        {
            "ingress": {"enabled": True},
            "hub": {"autoscaling": {"enabled": False}},
            "config": {"extraEnv": {"HUB_MAX_PAGE_SIZE": "500"}},
        },
        {"worker": {"enabled": False}, "networkPolicy": {"enabled": False}, "migrations": {"enabled": False}},
        {"database": {"existingSecret": "hub-db"}, "keys": {"existingSecret": "hub-keys"}},
    ],
    ids=["defaults", "ingress-fixed-replicas", "minimal", "existing-secrets"],
)
def test_every_manifest_is_valid_kubernetes(values: dict[str, Any], version: str) -> None:
    objs = render(values)
    assert objs
    for obj in objs:
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_chart_holds_what_production_needs() -> None:
    objs = render()
    kinds = sorted(o["kind"] for o in objs)
    assert kinds == sorted(
        [
            "Deployment",
            "Deployment",
            "Job",
            "Secret",
            "Secret",
            "HorizontalPodAutoscaler",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "PodDisruptionBudget",
            "NetworkPolicy",
            "NetworkPolicy",
            "Service",
            "ServiceAccount",
        ]
    )
    deployments = by_kind(objs, "Deployment")
    hub, worker = deployments["hub-zorgnet-hub"], deployments["hub-zorgnet-hub-worker"]
    for dep, args in ((hub, ["serve", "--workers", "2", "--port", "8080"]), (worker, ["worker"])):
        pod = dep["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["args"] == args
        assert container["livenessProbe"] and container["readinessProbe"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert set(mounts) == {
            "/run/secrets/hub",
            "/var/lib/hub",
            "/var/lib/hub/keys",
            "/var/lib/hub/audit-keys",
            "/tmp",
        }  # noqa: S108 - the container path
        assert all(
            mounts[p].get("readOnly") for p in ("/run/secrets/hub", "/var/lib/hub/keys", "/var/lib/hub/audit-keys")
        )
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    probes = hub["spec"]["template"]["spec"]["containers"][0]
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert hub["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 30  # > HUB_GRACEFUL_TIMEOUT

    (job,) = by_kind(objs, "Job").values()
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "upgrade"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"

    secrets = by_kind(objs, "Secret")
    assert set(secrets["hub-zorgnet-hub-database"]["data"]) == {"database-url"}
    assert set(secrets["hub-zorgnet-hub-keys"]["data"]) == {"jwks.json", "keyring.json"}

    hpas = by_kind(objs, "HorizontalPodAutoscaler")
    assert {h["spec"]["scaleTargetRef"]["name"] for h in hpas.values()} == set(deployments)
    pdbs = by_kind(objs, "PodDisruptionBudget")
    for pdb in pdbs.values():
        target = deployments[pdb["metadata"]["name"]]
        assert pdb["spec"]["selector"]["matchLabels"] == target["spec"]["selector"]["matchLabels"]
    service = next(iter(by_kind(objs, "Service").values()))
    assert service["spec"]["selector"] == hub["spec"]["selector"]["matchLabels"]
    policies = by_kind(objs, "NetworkPolicy")
    assert policies["hub-zorgnet-hub"]["spec"]["policyTypes"] == ["Ingress", "Egress"]


def test_the_pod_environment_passes_the_production_checks(tmp_path: Path) -> None:
    objs = render()
    hub = by_kind(objs, "Deployment")["hub-zorgnet-hub"]
    env = {e["name"]: e["value"] for e in hub["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["HUB_ENVIRONMENT"] == "production"
    secret_file = tmp_path / "database-url"
    secret_file.write_text(SECRETS["database"]["url"])
    fields = {k.removeprefix("HUB_").lower(): v for k, v in env.items() if k.startswith("HUB_")}
    fields.pop("database_url_file")
    settings = Settings(**fields, database_url=secret_file.read_text())
    assert production_problems(settings) == []


def test_ingress_routes_only_the_public_api() -> None:
    (ingress,) = by_kind(render({"ingress": {"enabled": True}}), "Ingress").values()
    paths = [p["path"] for p in ingress["spec"]["rules"][0]["http"]["paths"]]
    assert "/fhir" in paths and "/metrics" not in paths and "/" not in paths


def test_fixed_replicas_without_autoscaling() -> None:
    objs = render({"hub": {"autoscaling": {"enabled": False}, "replicas": 3}})
    assert by_kind(objs, "Deployment")["hub-zorgnet-hub"]["spec"]["replicas"] == 3
    assert "hub-zorgnet-hub" not in by_kind(objs, "HorizontalPodAutoscaler")


def test_existing_secrets_are_used_not_made() -> None:
    objs = render({"database": {"existingSecret": "hub-db"}, "keys": {"existingSecret": "hub-keys"}})
    assert not by_kind(objs, "Secret")
    volumes = by_kind(objs, "Deployment")["hub-zorgnet-hub"]["spec"]["template"]["spec"]["volumes"]
    assert {v["secret"]["secretName"] for v in volumes if "secret" in v} == {"hub-db", "hub-keys"}


def test_missing_secrets_fail_with_the_reason() -> None:
    with pytest.raises(TemplateError, match="database.url or database.existingSecret is required"):
        render_chart(CHART, {"keys": SECRETS["keys"]})
