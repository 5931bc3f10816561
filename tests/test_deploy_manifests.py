"""The Kubernetes manifests and the container recipe, checked offline as a platform team would.

kubernetes-validate (the Kubernetes OpenAPI schemas, strict: an unknown field fails) for the core
objects, a schema written from prometheus-operator's CRD for the ServiceMonitor, checkov for the
security rules (manifests and deploy/Containerfile), and ovchat's own facts: the options the server
takes, the metric it exports, the user and paths of the image, the memory budget it computes in the
pod's limit for the image's model. Both tools live in their own venv
(build/venv-deploy-check, `make deploy-check-env`): checkov pins many packages of its own.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from ovchat.cli.serve import serve
from ovchat.model import memory
from ovchat.model.device import DeviceConfig
from ovchat.model.files import find_model
from ovchat.server.metrics import ServerMetrics
from ovchat.server.models import ServedModels
from ovchat.server.settings import EngineConfig, PoolSettings

ROOT = Path(__file__).resolve().parent.parent
KUBE = ROOT / "deploy" / "kubernetes"
CONTAINERFILE = ROOT / "deploy" / "Containerfile"
DEPLOY_GUIDE = ROOT / "docs" / "deploy.md"
DEPLOY_VENV = ROOT / "build" / "venv-deploy-check"
SERVICE_MONITOR_SCHEMA = Path(__file__).parent / "fixtures" / "servicemonitor-v1.schema.json"
# The oldest Kubernetes whose pods have the preStop sleep action on by default, and the newest the
# installed kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
# The largest RSS measured with --kv-cache-tokens 8192 (BENCHMARKS.md: storms of disconnecting clients).
MEASURED_RSS_MB = 714
# What the manifests skip, each with its reason inline (checkov.io/skipN annotations); a new skip,
# like a new failure, fails the test.
K8S_SKIPS = {"CKV_K8S_14", "CKV_K8S_15", "CKV_K8S_35", "CKV_K8S_43"}
# The checks a platform team asks for by name: they must run and pass, not merely not fail.
K8S_REQUIRED = {
    "CKV_K8S_8": "liveness probe",
    "CKV_K8S_9": "readiness probe",
    "CKV_K8S_10": "CPU requests",
    "CKV_K8S_11": "CPU limits",
    "CKV_K8S_12": "memory requests",
    "CKV_K8S_13": "memory limits",
    "CKV_K8S_20": "no privilege escalation",
    "CKV_K8S_22": "read-only root filesystem",
    "CKV_K8S_23": "no root containers",
    "CKV_K8S_28": "no NET_RAW",
    "CKV_K8S_31": "seccomp RuntimeDefault",
    "CKV_K8S_37": "capabilities dropped",
    "CKV_K8S_38": "no service account token",
    "CKV_K8S_40": "a high user id",
    "CKV2_K8S_6": "a NetworkPolicy for the pods",
}
DOCKER_REQUIRED = {
    "CKV_DOCKER_2": "HEALTHCHECK",
    "CKV_DOCKER_3": "a user is created",
    "CKV_DOCKER_8": "not root",
}
# Containerfile checks that fail and why that is acceptable. The recipe is another file's business:
# the reasons live here, where a new failure is compared against them.
CONTAINERFILE_EXCEPTIONS = {
    "CKV_DOCKER_7": "FROM ${BASE}: checkov does not resolve build arguments; BASE defaults to the "
    "versioned python:3.11-slim-bookworm and image.py's local base is localhost/ovchat-base:bookworm",
}


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; kubectl refuses the manifest. Refuse it here too."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        duplicates = {key for key in keys if keys.count(key) > 1}
        if duplicates:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate keys {duplicates}", node.start_mark
            )
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.load_all(path.read_text(), Loader=UniqueKeyLoader) if doc]


def kustomization() -> dict[str, Any]:
    return load_yaml(KUBE / "kustomization.yaml")[0]


def objects() -> dict[str, dict[str, Any]]:
    """Every object `kubectl apply -k deploy/kubernetes` creates, by kind."""
    found: dict[str, dict[str, Any]] = {}
    for name in kustomization()["resources"]:
        for doc in load_yaml(KUBE / name):
            assert doc["kind"] not in found, f"two {doc['kind']} objects"
            found[doc["kind"]] = doc
    return found


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = objects()["Deployment"]["spec"]["template"]["spec"]
    return spec


def container() -> dict[str, Any]:
    containers = pod_spec()["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def env(name: str) -> dict[str, Any]:
    return next(item for item in container()["env"] if item["name"] == name)


def memory_limit_bytes() -> int:
    memory_limit = container()["resources"]["limits"]["memory"]
    units = {"Mi": 2**20, "Gi": 2**30}
    return int(memory_limit[:-2]) * units[memory_limit[-2:]]


def serve_options() -> dict[str, Any]:
    """The container's arguments as `ovchat serve` itself parses them (a typo or bad value fails)."""
    args = container()["args"]
    assert args[0] == "serve", "the image's entrypoint is `ovchat`: the first argument is the command"
    return dict(serve.make_context("serve", list(args[1:])).params)


def deploy_tool(name: str) -> Path:
    path = DEPLOY_VENV / "bin" / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make deploy-check-env` (the README's `make test` does)")
    return path


def test_the_kustomization_applies_every_manifest_in_the_namespace() -> None:
    listed = kustomization()["resources"]
    on_disk = sorted(path.name for path in KUBE.glob("*.yaml") if path.name != "kustomization.yaml")
    assert sorted(listed) == on_disk
    assert {doc["metadata"].get("namespace") for kind, doc in objects().items() if kind != "Namespace"} == {
        objects()["Namespace"]["metadata"]["name"]
    }


VALIDATE = """
import json, sys
import kubernetes_validate as kv
documents, versions = json.load(sys.stdin)
results = []
for doc in documents:
    for version in versions:
        try:
            kv.validate(doc, version, strict=True)
            results.append([doc["kind"], version, "valid"])
        except kv.ValidationError as exc:
            results.append([doc["kind"], version, f"invalid at {list(exc.path)}: {exc.message}"])
print(json.dumps(results))
"""


def test_core_objects_are_valid_kubernetes_in_strict_mode() -> None:
    core = [doc for kind, doc in objects().items() if kind != "ServiceMonitor"]  # a CRD: tested below
    # A misspelt field must be caught, or strict mode is not what it claims.
    misspelt = json.loads(json.dumps(objects()["Deployment"]))
    probe = misspelt["spec"]["template"]["spec"]["containers"][0]
    probe["readinesProbe"] = probe.pop("readinessProbe")
    result = subprocess.run(
        [str(deploy_tool("python")), "-c", VALIDATE],
        input=json.dumps([[*core, misspelt], KUBERNETES_VERSIONS]),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    verdicts = json.loads(result.stdout)
    assert len(verdicts) == (len(core) + 1) * len(KUBERNETES_VERSIONS)
    for kind, version, verdict in verdicts[: len(core) * len(KUBERNETES_VERSIONS)]:
        assert verdict == "valid", f"{kind} on Kubernetes {version}: {verdict}"
    for _, _, verdict in verdicts[len(core) * len(KUBERNETES_VERSIONS) :]:
        assert "'readinesProbe' was unexpected" in verdict


def test_the_service_monitor_scrapes_the_service_with_the_api_key() -> None:
    monitor, service = objects()["ServiceMonitor"], objects()["Service"]
    jsonschema.validate(monitor, json.loads(SERVICE_MONITOR_SCHEMA.read_text()))
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    # /metrics is behind the key: the scrape uses the Secret the server reads its key from.
    key_ref = env("OVCHAT_API_KEY")["valueFrom"]["secretKeyRef"]
    assert endpoint["authorization"] == {
        "type": "Bearer",
        "credentials": {"name": key_ref["name"], "key": key_ref["key"]},
    }


def test_the_deploy_guide_creates_the_secret_the_pods_read() -> None:
    key_ref = env("OVCHAT_API_KEY")["valueFrom"]["secretKeyRef"]
    namespace = objects()["Namespace"]["metadata"]["name"]
    command = (
        f"kubectl -n {namespace} create secret generic {key_ref['name']} --from-literal={key_ref['key']}="
    )
    assert command in DEPLOY_GUIDE.read_text()


def test_the_autoscaler_follows_the_queue_gauge_the_server_exports() -> None:
    hpa, deployment = objects()["HorizontalPodAutoscaler"], objects()["Deployment"]
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    name = metric["pods"]["metric"]["name"]
    assert float(metric["pods"]["target"]["averageValue"]) > 0
    # The server exports it, as a gauge.
    exposition = ServerMetrics().render().decode()
    assert f"# TYPE {name} gauge" in exposition
    # prometheus-adapter publishes it per pod under the same name.
    (rule,) = load_yaml(KUBE / "prometheus-adapter" / "values.yaml")[0]["rules"]["custom"]
    assert rule["seriesQuery"].startswith(f"{name}{{")
    assert rule["resources"]["overrides"] == {
        "namespace": {"resource": "namespace"},
        "pod": {"resource": "pod"},
    }
    assert re.fullmatch(rule["name"]["matches"], name) and rule["name"]["as"] == name
    for placeholder in ("<<.Series>>", "<<.LabelMatchers>>", "<<.GroupBy>>"):
        assert placeholder in rule["metricsQuery"]
    # A drain never takes the last pod: the budget keeps one while the autoscaler keeps two.
    assert hpa["spec"]["minReplicas"] > objects()["PodDisruptionBudget"]["spec"]["minAvailable"] >= 1


def test_every_selector_finds_the_pods() -> None:
    labels = objects()["Deployment"]["spec"]["template"]["metadata"]["labels"]
    kinds = objects()
    selectors = {
        "Deployment": kinds["Deployment"]["spec"]["selector"]["matchLabels"],
        "Service": kinds["Service"]["spec"]["selector"],
        "PodDisruptionBudget": kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
        "NetworkPolicy": kinds["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"],
    }
    for kind, selector in selectors.items():
        assert selector and selector.items() <= labels.items(), kind
    ports = {port["name"]: port["containerPort"] for port in container()["ports"]}
    assert int(env("OVCHAT_PORT")["value"]) == ports["http"]
    assert kinds["Service"]["spec"]["ports"][0]["targetPort"] == "http"
    (rule,) = kinds["NetworkPolicy"]["spec"]["ingress"]
    assert [port["port"] for port in rule["ports"]] == [ports["http"]]


def test_the_probes_use_the_documented_routes_and_wait_for_the_model() -> None:
    spec = container()
    for probe, path in (
        ("startupProbe", "/health"),
        ("readinessProbe", "/health"),
        ("livenessProbe", "/live"),
    ):
        assert spec[probe]["httpGet"] == {"path": path, "port": "http"}, probe
    startup = spec["startupProbe"]
    # The model loads in 3-8 s on 2 cores; a slow node or a bigger model gets a minute at least.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60


def test_the_server_options_parse_and_every_env_name_is_one_serve_reads() -> None:
    options = serve_options()
    read = {param.envvar for param in serve.params if isinstance(param.envvar, str)}
    assert {item["name"] for item in container()["env"]} <= read
    assert options["kv_cache_tokens"], "without it the 1 GB KV cache default grows past the memory limit"


def test_the_shutdown_fits_in_the_grace_period() -> None:
    sleep = container()["lifecycle"]["preStop"]["sleep"]["seconds"]
    shutdown = serve_options()["shutdown_timeout"]
    assert pod_spec()["terminationGracePeriodSeconds"] >= sleep + shutdown + 10


def test_resources_are_guaranteed_and_above_the_measured_memory() -> None:
    resources = container()["resources"]
    assert resources["requests"] == resources["limits"]
    assert memory_limit_bytes() / 1e6 >= 1.3 * MEASURED_RSS_MB
    assert float(resources["limits"]["cpu"]).is_integer()  # whole CPUs: pinnable by the CPU manager


def test_the_memory_limit_holds_the_image_model_by_the_servers_own_budget(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve` refuses at start a model it estimates larger than its memory budget, by default 90% of
    what the cgroup's memory.max leaves: under 1 GiB the image's model at --kv-cache-tokens 8192 (1.11
    GiB by that estimate) never loaded and the pods crash-looped."""
    limit = memory_limit_bytes()

    def room_in_the_pod(*_: object) -> int:  # the limit, less what the server holds (this process)
        return limit - (memory.resident_bytes() or 0)

    monkeypatch.setattr(memory, "available_bytes", room_in_the_pod)
    options = serve_options()
    config = EngineConfig(kv_cache_gb=options["kv_cache_gb"], kv_cache_tokens=options["kv_cache_tokens"])
    pool = PoolSettings(max_loaded=options["max_loaded"], memory_budget_gb=options["memory_budget"])
    # The server's own start up to its first load: an OvchatError here is the pod's crash loop.
    served = ServedModels(
        {model_dir.name: find_model(model_dir)}, DeviceConfig(), config, ServerMetrics(), pool
    )
    budget = served.pool.memory_budget
    assert budget is not None and served.loader.size(model_dir.name) <= budget


def test_every_replica_serves_the_models_folder_of_the_image(monkeypatch: pytest.MonkeyPatch) -> None:
    for item in container()["env"]:
        if "value" in item:
            monkeypatch.setenv(item["name"], item["value"])
    options = serve_options()  # the pod's environment as `ovchat serve` reads it
    recipe = CONTAINERFILE.read_text()
    declared = re.search(r"^VOLUME (.+)$", recipe, re.MULTILINE)
    # The folder the image holds its model in and declares as a volume (where a mounted one goes)...
    assert declared and options["models_dir"] in declared.group(1)
    assert re.search(rf"COPY model {options['models_dir']}/", recipe)
    # ...is the whole set: no model named apart from it (the image's OVCHAT_MODEL is emptied).
    assert options["model"] == ()
    # A volume mounted over it (none by default) is read-only: every replica reads the same models.
    mounts = {mount["mountPath"]: mount for mount in container()["volumeMounts"]}
    assert mounts.get(options["models_dir"], {"readOnly": True}).get("readOnly") is True


def test_the_pod_runs_locked_down_with_writable_volumes_only_where_ovchat_writes() -> None:
    pod, spec = pod_spec(), container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    context = spec["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    # The image's user, and the cache folder it declares as a volume.
    recipe = CONTAINERFILE.read_text()
    uid = re.search(r"useradd .*--uid (\d+)", recipe)
    assert uid and pod["securityContext"]["runAsUser"] == context["runAsUser"] == int(uid.group(1))
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in spec["volumeMounts"]}
    cache = env("OVCHAT_CACHE_DIR")["value"]
    declared = re.search(r"^VOLUME (.+)$", recipe, re.MULTILINE)
    assert declared and cache in declared.group(1)
    for path in (cache, "/tmp"):
        assert "emptyDir" in volumes[mounts[path]], path
        assert volumes[mounts[path]]["emptyDir"].get("sizeLimit"), path


def checkov(folder: Path) -> dict[str, dict[str, Any]]:
    """checkov's results for a folder, by check type; offline (--skip-download)."""
    result = subprocess.run(
        [
            *(str(deploy_tool("checkov")), "-d", str(folder), "--framework", "kubernetes", "dockerfile"),
            *("-o", "json", "--skip-download", "--soft-fail"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(folder), "LOG_LEVEL": "WARNING"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    return {report["check_type"]: report["results"] for report in reports if "results" in report}


def ids(checks: list[dict[str, Any]], under: str) -> set[str]:
    return {check["check_id"] for check in checks if check["file_path"].startswith(under)}


def test_checkov_finds_no_new_failure_in_the_manifests_or_the_containerfile(tmp_path: Path) -> None:
    shutil.copytree(KUBE, tmp_path / "kubernetes")
    # checkov only recognises a Dockerfile by its name: as "Containerfile" it scans nothing and passes.
    (tmp_path / "image").mkdir()
    shutil.copy(CONTAINERFILE, tmp_path / "image" / "Dockerfile")
    # The same Deployment with a writable root and privilege escalation: checkov must see both.
    weakened = objects()["Deployment"]
    weakened["spec"]["template"]["spec"]["containers"][0]["securityContext"].update(
        readOnlyRootFilesystem=False, allowPrivilegeEscalation=True
    )
    (tmp_path / "weakened").mkdir()
    (tmp_path / "weakened" / "deployment.yaml").write_text(yaml.safe_dump(weakened))

    results = checkov(tmp_path)
    kube, docker = results["kubernetes"], results["dockerfile"]
    failed = {check["check_id"]: check["check_name"] for check in kube["failed_checks"]}
    assert not ids(kube["failed_checks"], "/kubernetes/"), failed
    skipped = [check for check in kube["skipped_checks"] if check["file_path"].startswith("/kubernetes/")]
    assert {check["check_id"] for check in skipped} == K8S_SKIPS
    for check in skipped:
        assert len(check["check_result"].get("suppress_comment", "")) > 20, check["check_id"]
    assert set(K8S_REQUIRED) <= ids(kube["passed_checks"], "/kubernetes/")
    assert {"CKV_K8S_20", "CKV_K8S_22"} <= ids(kube["failed_checks"], "/weakened/")

    failing = ids(docker["failed_checks"], "/image/")
    assert failing <= set(CONTAINERFILE_EXCEPTIONS), {
        check["check_id"]: check["check_name"] for check in docker["failed_checks"]
    }
    for check in docker.get("skipped_checks", []):  # inline `# checkov:skip=` annotations need reasons
        assert check["check_result"].get("suppress_comment"), check["check_id"]
    assert set(DOCKER_REQUIRED) <= ids(docker["passed_checks"], "/image/")
