"""The Helm chart: lint, render four value profiles, validate against Kubernetes 1.29, inspect objects."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from emotionaware.paths import ROOT
from export.triton_repo import GpuOptions

CHART = ROOT / "helm" / "emotionaware"
HELM = Path(os.environ.get("HELM", ROOT / ".tools" / "helm"))
KUBE_VERSION = "1.29.0"
PROFILES = sorted(p.stem.removesuffix("-values") for p in (CHART / "ci").glob("*-values.yaml"))
# Custom resources have no schema among Kubernetes' own; they are checked by assertions below.
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    if not HELM.exists():
        pytest.fail(f"{HELM} is missing: run `make helm-check` (or set HELM)")
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, check=check)


def values_file(profile: str) -> Path:
    return CHART / "ci" / f"{profile}-values.yaml"


def render(profile: str) -> list[dict]:
    out = helm(
        "template",
        "rel",
        str(CHART),
        "-f",
        str(values_file(profile)),
        "--namespace",
        "ns",
        "--kube-version",
        KUBE_VERSION,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def find(objects: list[dict], kind: str, name: str | None = None) -> dict:
    matches = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def container(deployment: dict, name: str) -> dict:
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name)


@pytest.fixture(scope="module", params=PROFILES)
def rendered(request) -> tuple[str, list[dict]]:
    return request.param, render(request.param)


def test_there_are_four_profiles():
    assert set(PROFILES) == {"cpu-dev", "gpu-bucket", "gpu-pvc", "autoscaling-tls"}


@pytest.mark.parametrize("profile", PROFILES)
def test_lint_strict(profile):
    result = helm(
        "lint",
        "--strict",
        "--kube-version",
        KUBE_VERSION,
        "-f",
        str(values_file(profile)),
        str(CHART),
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_manifests_are_valid_kubernetes_1_29_in_strict_mode(rendered):
    _, objects = rendered
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {err.message} at {list(err.path)}")


def test_every_container_is_locked_down(rendered):
    _, objects = rendered
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for c in pod["containers"] + pod.get("initContainers", []):
            ctx = c["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True and ctx["allowPrivilegeEscalation"] is False
            assert ctx["capabilities"]["drop"] == ["ALL"]
            assert c["resources"].get("requests"), f"{c['name']} has no resource requests"
    account = find(objects, "ServiceAccount")
    assert account["automountServiceAccountToken"] is False


def test_triton_probes_cover_health_and_slow_engine_builds(rendered):
    _, objects = rendered
    triton = container(find(objects, "Deployment", "rel-emotionaware-triton"), "triton")
    assert triton["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert triton["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    startup = triton["startupProbe"]
    assert startup["httpGet"]["path"] == "/v2/health/ready"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30 * 60


def test_gateway_is_configured_for_the_triton_service(rendered):
    _, objects = rendered
    service = find(objects, "Service", "rel-emotionaware-triton")
    grpc_port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc")
    config = find(objects, "ConfigMap", "rel-emotionaware-gateway")["data"]
    assert config["EMOTIONAWARE_TRITON_URL"] == f"rel-emotionaware-triton:{grpc_port}"
    assert config["EMOTIONAWARE_MODEL_REPOSITORY"] == "/models"
    gateway = find(objects, "Deployment", "rel-emotionaware-gateway")
    pod = gateway["spec"]["template"]["spec"]
    main = container(gateway, "gateway")
    assert main["envFrom"] == [{"configMapRef": {"name": "rel-emotionaware-gateway"}}]
    health_port = int(config["EMOTIONAWARE_HEALTH_LISTEN"].rsplit(":", 1)[1])
    assert main["readinessProbe"]["grpc"]["port"] == health_port
    # The HTTP/JSON API: listened on, a named container port, and a port of the Service.
    assert config["EMOTIONAWARE_HTTP_LISTEN"] == "0.0.0.0:8080"
    assert {"name": "http", "containerPort": 8080, "protocol": "TCP"} in main["ports"]
    gateway_service = find(objects, "Service", "rel-emotionaware-gateway")
    assert {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP", "appProtocol": "http"} in (
        gateway_service["spec"]["ports"]
    )
    assert "tcpSocket" in main["livenessProbe"]  # Triton being down must not restart gateways
    assert any(m["mountPath"] == "/models" for m in main["volumeMounts"])
    assert {v["name"] for v in pod["volumes"]} >= {"models", "tmp"}
    # The gateway sees the same repository as Triton: a copy, a sync from the bucket, or the claim.
    assert pod.get("initContainers") or any("persistentVolumeClaim" in v for v in pod["volumes"])


def test_gpu_profiles_request_gpus_shm_and_an_engine_cache(rendered):
    profile, objects = rendered
    deployment = find(objects, "Deployment", "rel-emotionaware-triton")
    pod = deployment["spec"]["template"]["spec"]
    triton = container(deployment, "triton")
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in triton["volumeMounts"]}
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory" and mounts["dshm"] == "/dev/shm"
    # The export writes this path into the GPU configs as TensorRT's engine cache.
    assert mounts["engine-cache"] == GpuOptions().engine_cache
    if profile == "cpu-dev":
        assert "nvidia.com/gpu" not in triton["resources"]["limits"]
        assert "--model-config-name=cpu" in triton["args"]
        assert "nodeSelector" not in pod
        return
    assert triton["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert triton["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert "--model-config-name=cpu" not in triton["args"]


def test_model_repository_sources():
    bucket = render("gpu-bucket")
    triton = container(find(bucket, "Deployment", "rel-emotionaware-triton"), "triton")
    assert "--model-repository=s3://emotionaware-models/model_repository_gpu" in triton["args"]
    assert triton["envFrom"] == [{"secretRef": {"name": "emotionaware-s3"}}]
    sync = find(bucket, "Deployment", "rel-emotionaware-gateway")["spec"]["template"]["spec"][
        "initContainers"
    ][0]
    assert sync["command"][:3] == ["aws", "s3", "sync"] and "*.onnx" in sync["command"]

    gcs = render("autoscaling-tls")
    triton = container(find(gcs, "Deployment", "rel-emotionaware-triton"), "triton")
    assert {"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": "/var/secrets/gcs/gcs.json"} in triton["env"]

    pvc = render("gpu-pvc")
    pod = find(pvc, "Deployment", "rel-emotionaware-triton")["spec"]["template"]["spec"]
    models = next(v for v in pod["volumes"] if v["name"] == "models")
    assert models["persistentVolumeClaim"] == {"claimName": "emotionaware-models", "readOnly": True}
    cache = next(v for v in pod["volumes"] if v["name"] == "engine-cache")
    assert cache["persistentVolumeClaim"]["claimName"] == "emotionaware-trt-engines"
    assert not [o for o in pvc if o["kind"] == "PersistentVolumeClaim"]  # the existing claim is used

    image = render("cpu-dev")
    init = find(image, "Deployment", "rel-emotionaware-triton")["spec"]["template"]["spec"]["initContainers"][
        0
    ]
    assert init["image"].startswith("ghcr.io/emotionaware/model-repository:")


def test_feedback_database_and_the_shared_request_id_key():
    # cpu-dev: no database (SubmitFeedback off), a key the chart makes and keeps on upgrades.
    objects = render("cpu-dev")
    config = find(objects, "ConfigMap", "rel-emotionaware-gateway")["data"]
    assert config["EMOTIONAWARE_FEEDBACK_DATABASE"] == ""
    assert config["EMOTIONAWARE_REQUEST_ID_KEY_FILE"] == "/var/run/request-id/key"
    key = find(objects, "Secret", "rel-emotionaware-gateway-request-id")
    assert (
        key["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep" and len(key["data"]["key"]) >= 48
    )
    gateway = find(objects, "Deployment", "rel-emotionaware-gateway")
    assert {"name": "request-id-key", "mountPath": "/var/run/request-id", "readOnly": True} in container(
        gateway, "gateway"
    )["volumeMounts"]
    assert "checksum/request-id" in gateway["spec"]["template"]["metadata"]["annotations"]  # roll together
    # autoscaling-tls: the database URL from a Secret, the key from the operator's Secret.
    objects = render("autoscaling-tls")
    assert (
        "EMOTIONAWARE_FEEDBACK_DATABASE" not in find(objects, "ConfigMap", "rel-emotionaware-gateway")["data"]
    )
    gateway = find(objects, "Deployment", "rel-emotionaware-gateway")
    assert container(gateway, "gateway")["env"] == [
        {"name": "EMOTIONAWARE_FEEDBACK_DATABASE",
         "valueFrom": {"secretKeyRef": {"name": "emotionaware-feedback-db", "key": "url"}}}
    ]  # fmt: skip
    volumes = {v["name"]: v for v in gateway["spec"]["template"]["spec"]["volumes"]}
    assert volumes["request-id-key"]["secret"]["secretName"] == "emotionaware-request-id"
    assert not [o for o in objects if o["kind"] == "Secret"]


def test_autoscaling_tls_and_network_policy():
    objects = render("autoscaling-tls")
    triton_hpa = find(objects, "HorizontalPodAutoscaler", "rel-emotionaware-triton")
    (metric,) = triton_hpa["spec"]["metrics"]
    assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == "triton_queue_us_per_request"
    assert metric["pods"]["target"]["averageValue"] == "15000"
    assert (triton_hpa["spec"]["minReplicas"], triton_hpa["spec"]["maxReplicas"]) == (2, 8)
    gateway_hpa = find(objects, "HorizontalPodAutoscaler", "rel-emotionaware-gateway")
    assert gateway_hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert "replicas" not in find(objects, "Deployment", "rel-emotionaware-triton")["spec"]  # the HPA owns it

    config = find(objects, "ConfigMap", "rel-emotionaware-gateway")["data"]
    assert config["EMOTIONAWARE_TLS_CERT_FILE"] == "/var/run/tls/tls.crt"
    assert config["EMOTIONAWARE_TLS_CLIENT_CA_FILE"] == "/var/run/client-ca/ca.crt"
    assert config["EMOTIONAWARE_AUTH_TOKENS_FILE"] == "/var/run/auth/tokens.toml"
    assert (config["EMOTIONAWARE_ALLOW_UNAUTHENTICATED"], config["EMOTIONAWARE_AUDIT_LOG"]) == (
        "false",
        "true",
    )
    pod = find(objects, "Deployment", "rel-emotionaware-gateway")["spec"]["template"]["spec"]
    assert {"name": "tls", "secret": {"secretName": "emotionaware-gateway-tls"}} in pod["volumes"]
    assert {"name": "client-ca", "secret": {"secretName": "emotionaware-client-ca"}} in pod["volumes"]
    assert {"name": "auth-tokens", "secret": {"secretName": "emotionaware-gateway-tokens"}} in pod["volumes"]
    mounts = container(find(objects, "Deployment", "rel-emotionaware-gateway"), "gateway")["volumeMounts"]
    # Directory mounts, never subPath: a rotated Secret must reach the running pod.
    assert all("subPath" not in m for m in mounts if m["name"] in {"tls", "client-ca", "auth-tokens"})
    headless = find(objects, "Service", "rel-emotionaware-gateway-headless")
    assert headless["spec"]["clusterIP"] == "None"

    policy = find(objects, "NetworkPolicy", "rel-emotionaware-triton")
    inference = policy["spec"]["ingress"][0]
    assert inference["from"] == [
        {
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "emotionaware",
                    "app.kubernetes.io/instance": "rel",
                    "app.kubernetes.io/component": "gateway",
                }
            }
        }
    ]
    assert {p["port"] for p in inference["ports"]} == {8000, 8001}
    api = find(objects, "NetworkPolicy", "rel-emotionaware-gateway")["spec"]["ingress"][0]
    assert {p["port"] for p in api["ports"]} == {50051, 8080}  # gRPC and HTTP, for the same peers
    assert {o["kind"] for o in objects} >= {"ServiceMonitor", "PodDisruptionBudget"}
    dashboard = find(objects, "ConfigMap", "rel-emotionaware-dashboard")
    assert json.loads(dashboard["data"]["emotionaware.json"])["uid"] == "emotionaware"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"triton": {"replicas": "two"}}, "replicas"),
        ({"gateway": {"colour": "blue"}}, "colour"),
        ({"triton": {"modelRepository": {"source": "ftp"}}}, "source"),
    ],
)
def test_schema_rejects_bad_values_with_a_clear_message(tmp_path, override, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(override))
    result = helm("lint", "--strict", "-f", str(bad), str(CHART), check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "values don't meet the specifications of the schema" in output and message in output


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"triton": {"modelRepository": {"source": "bucket"}}}, "bucket.url is required"),
        ({"triton": {"modelRepository": {"source": "pvc"}}}, "pvc.claimName is required"),
        ({"triton": {"resources": {"limits": {"nvidia.com/gpu": 2}}}}, "set triton.gpu.count instead"),
        ({"gateway": {"tls": {"enabled": True}}}, "gateway.tls.secretName is required"),
        ({"gateway": {"tls": {"clientCASecret": "ca"}}}, "clientCASecret (mTLS) needs gateway.tls.enabled"),
        ({"gateway": {"auth": {"allowUnauthenticated": False}}}, "the gateway needs authentication"),
    ],
)
def test_inconsistent_values_fail_at_render_time_with_a_clear_message(tmp_path, override, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(override))
    # The defaults plus one opt-out, so that only the override under test is wrong (a later
    # -f wins over an earlier one; --set would win over both).
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({"gateway": {"auth": {"allowUnauthenticated": True}}}))
    result = helm("template", "rel", str(CHART), "-f", str(base), "-f", str(bad), check=False)
    assert result.returncode != 0 and message in result.stderr


def leaf_keys(tree: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else key
        free_form = isinstance(value, dict) and (
            not value or key in {"requests", "limits", "nodeSelector", "labels"}
        )
        keys += leaf_keys(value, path) if isinstance(value, dict) and not free_form else [path]
    return keys


def test_chart_readme_documents_every_value():
    readme = (CHART / "README.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = [key for key in leaf_keys(values) if f"`{key}`" not in readme]
    assert not missing, f"undocumented values: {missing}"


def test_dashboard_queries_use_metrics_that_exist():
    from prometheus_client import REGISTRY

    from gateway import metrics  # noqa: F401  (registers the gateway's metrics)

    dashboard = json.loads((CHART / "dashboards" / "emotionaware.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    exposed = {family.name + s for family in REGISTRY.collect() for s in suffixes.get(family.type, [""])}
    for name in {m for e in exprs for m in re.findall(r"\b(emotionaware_[a-z_]+)", e)}:
        assert name in exposed, f"dashboard uses {name}, which the gateway does not export"
    # Triton's metric names, as documented for its metrics endpoint.
    triton = {m for e in exprs for m in re.findall(r"\b(nv_[a-z_]+)", e)}
    assert triton <= {
        "nv_inference_request_success",
        "nv_inference_request_failure",
        "nv_inference_count",
        "nv_inference_exec_count",
        "nv_inference_queue_duration_us",
        "nv_inference_compute_infer_duration_us",
        "nv_gpu_utilization",
        "nv_gpu_memory_used_bytes",
    }
