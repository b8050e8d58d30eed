"""Deployment files, checked without a container engine or a cluster.

- Dockerfile: hadolint, plus what the hub needs (non-root, slim, its packages and the shared
  index's extra, a healthcheck on a real route).
- Compose: valid against the Compose specification's JSON schema; services, healthchecks and
  start order; every mounted file exists; Prometheus' configuration passes ``promtool``; the
  hub's ``HUB_INDEX_URL`` is the PostgreSQL service's database and user.
- RabbitMQ definitions: the hub's own topology, and the compose URL's password.
- Kubernetes: ``kubectl kustomize`` builds the kustomization; every resource validates against
  the Kubernetes schemas (kubernetes-validate, strict), CloudNativePG's ``Cluster`` against its
  CRD's schema (vendored: ``deploy/schemas``, strict); probes, drain and volumes fit the hub;
  ``HUB_INDEX_URL`` is the operator's URL of the cluster's database.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import re
import secrets
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from core.models import Provider
from core.topics import DEFAULT_EXCHANGE
from hub.app import create_app
from hub.cli.common import SHARED_INDEX_MODULES
from hub.settings import Settings
from sinks.rabbitmq import StreamRetention, stream_name, unrouted_name
from tests.harness.prometheus import PROMTOOL_BIN
from tests.harness.rabbitmq import broker_required
from tests.support import make_settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
KUSTOMIZE_DIR = DEPLOY / "kubernetes"
DEFINITIONS = DEPLOY / "rabbitmq" / "definitions.json"
CNPG_CLUSTER_SCHEMA = DEPLOY / "schemas" / "postgresql.cnpg.io_v1_cluster.json"
KUBERNETES_VERSION = "1.32.0"
HUB_UID = 10001


def routes(tmp_path: Path) -> set[str]:
    app = create_app(make_settings(tmp_path / "data"))
    return {r.resource.canonical for r in app.router.routes() if r.resource is not None}


def tool(name: str) -> str:
    """A tool from the venv (pip-installed) or PATH; missing: a failure in CI, else a skip."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        message = f"{name} is not installed (the dev extra brings it)"
        if broker_required():
            pytest.fail(message)
        pytest.skip(message)
    return found


# -- Dockerfile ---------------------------------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [tool("hadolint"), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_builds_a_slim_non_root_image_with_a_healthcheck(tmp_path: Path) -> None:
    steps = instructions(DOCKERFILE.read_text())
    froms = [args for word, args in steps if word == "FROM"]
    assert len(froms) == 2 and all("-slim" in f for f in froms), froms
    final = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM") :]
    words = dict(final)
    assert words["USER"].split(":")[0] == str(HUB_UID)
    assert words["STOPSIGNAL"] == "SIGTERM"
    assert "8080" in words["EXPOSE"]
    assert json.loads(words["ENTRYPOINT"]) == ["hub"] and json.loads(words["CMD"]) == ["serve"]
    health = words["HEALTHCHECK"]
    [path] = re.findall(r"/health/\w+", health)
    assert path == "/health/ready" and path in routes(tmp_path)
    env = words["ENV"]
    assert "HUB_HOST=0.0.0.0" in env and "HUB_DATA_DIR=/var/lib/hub" in env
    assert "/var/lib/hub" in words["VOLUME"]


def test_dockerfile_copies_every_package_and_its_ignore_file_lets_them_in() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    include = re.search(r"include = \[(.*?)\]", pyproject)
    assert include
    packages = {p.strip(' "*') for p in include.group(1).split(",")}
    copied = {
        args.split()[0] for word, args in instructions(DOCKERFILE.read_text()) if word == "COPY"
    }
    assert packages <= copied, packages - copied
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("*") :].count("*") == 1
    for needed in [*packages, "pyproject.toml", "README.md"]:
        assert f"!{needed}/" in ignore or f"!{needed}" in ignore, needed


def closure(name: str, extras: frozenset[str]) -> set[str]:
    """The installed distributions ``name`` with ``extras`` brings (itself included)."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(canonicalize_name(name), extras)]
    while todo:
        each, wanted = todo.pop()
        if (each, wanted) in seen:
            continue
        seen.add((each, wanted))
        for line in importlib.metadata.requires(each) or []:
            req = Requirement(line)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in wanted | {""}):
                todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return {each for each, _ in seen}


def test_the_image_installs_the_shared_index_s_extra() -> None:
    """``HUB_INDEX_URL`` in the manifests needs the ``postgres`` extra in the image, and that
    extra must bring every module the hub checks for before it starts a worker on it."""
    installs = [
        args
        for word, args in instructions(DOCKERFILE.read_text())
        if word == "RUN" and "pip" in args
    ]
    [install] = installs
    [extras] = re.findall(r"'\.\[([\w,]+)\]'", install)
    assert "postgres" in extras.split(",")
    brought = closure("callback-hub", frozenset({"postgres"}))
    alone = closure("callback-hub", frozenset())
    providers = importlib.metadata.packages_distributions()
    for module in SHARED_INDEX_MODULES:
        dists = {canonicalize_name(d) for d in providers[module]}
        assert dists & brought, (module, dists)
        assert not dists & alone, f"{module} is no longer optional: the extra is pointless"


# -- compose ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def test_compose_file_follows_the_compose_specification(compose) -> None:
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    jsonschema.validators.validator_for(schema)(schema).validate(compose)


def test_compose_runs_the_stack_in_order_with_healthchecks(compose) -> None:
    services = compose["services"]
    assert set(services) == {"rabbitmq", "postgres", "hub", "prometheus", "grafana"}
    for name, service in services.items():
        assert service["healthcheck"]["test"], name
    rabbit = services["rabbitmq"]
    assert re.fullmatch(r"rabbitmq:4[\w.]*-management", rabbit["image"])
    hub = services["hub"]
    assert hub["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    assert hub["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["postgres"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert hub["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert "/health/ready" in " ".join(hub["healthcheck"]["test"])
    grace = int(hub["stop_grace_period"].removesuffix("s"))
    assert grace > float(hub["environment"]["HUB_DRAIN_TIMEOUT"])
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_compose_mounts_files_that_exist(compose) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source}"


def test_compose_hub_reaches_rabbitmq_as_the_user_of_the_definitions(compose) -> None:
    url = urlsplit(compose["services"]["hub"]["environment"]["HUB_RABBITMQ_URL"])
    assert url.hostname == "rabbitmq" and url.port == 5672
    users = {u["name"]: u for u in json.loads(DEFINITIONS.read_text())["users"]}
    user = users[url.username]
    raw = base64.b64decode(user["password_hash"])
    salt, digest = raw[:4], raw[4:]
    assert user["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    assert hashlib.sha256(salt + (url.password or "").encode()).digest() == digest


def test_compose_hub_indexes_in_the_postgres_service_s_database(compose) -> None:
    """``HUB_INDEX_URL`` names the user, password and database the image makes at its first
    start, on the service's name and port; the hub's settings take it; the health check asks
    for that user and database; the data is in a volume."""
    services = compose["services"]
    url = compose["services"]["hub"]["environment"]["HUB_INDEX_URL"]
    assert Settings(index_url=url).index_url is not None
    parts = urlsplit(url)
    postgres = services["postgres"]
    env = postgres["environment"]
    assert (parts.hostname, parts.port) == ("postgres", 5432)
    assert (parts.username, parts.password) == (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"])
    assert parts.path == "/" + env["POSTGRES_DB"]
    check = postgres["healthcheck"]["test"]
    assert check[check.index("-U") + 1] == env["POSTGRES_USER"]
    assert check[check.index("-d") + 1] == env["POSTGRES_DB"]
    volumes = dict(v.split(":")[:2] for v in postgres["volumes"])
    assert volumes["postgres-data"] == "/var/lib/postgresql/data"
    assert "postgres-data" in compose["volumes"]


def test_compose_prometheus_config_is_valid_and_scrapes_hub_and_rabbitmq(compose) -> None:
    config_file = DEPLOY / "prometheus" / "prometheus.yml"
    if not PROMTOOL_BIN.exists():
        pytest.fail(f"{PROMTOOL_BIN} missing: install Debian's prometheus package")
    result = subprocess.run(
        [str(PROMTOOL_BIN), "check", "config", str(config_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(config_file.read_text())
    targets = {
        job["job_name"]: [t for s in job["static_configs"] for t in s["targets"]]
        for job in config["scrape_configs"]
    }
    assert targets == {"hub": ["hub:8080"], "rabbitmq": ["rabbitmq:15692"]}
    mounted = [v.split(":")[1] for v in compose["services"]["prometheus"]["volumes"]]
    [rules_glob] = config["rule_files"]
    assert any(Path(m).match(rules_glob) for m in mounted), (rules_glob, mounted)


def test_compose_grafana_loads_the_provisioned_dashboards(compose) -> None:
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"])
    assert mounts["../dashboards/provisioning"] == "/etc/grafana/provisioning"
    provider_file = ROOT / "dashboards" / "provisioning" / "dashboards" / "callback-hub.yml"
    [provider] = yaml.safe_load(provider_file.read_text())["providers"]
    assert mounts["../dashboards/grafana"] == provider["options"]["path"]
    home = compose["services"]["grafana"]["environment"][
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"
    ]
    assert (ROOT / "dashboards" / "grafana" / Path(home).name).exists()
    sources = ROOT / "dashboards" / "provisioning" / "datasources" / "prometheus.yml"
    [source] = yaml.safe_load(sources.read_text())["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"


# -- RabbitMQ definitions -----------------------------------------------------------------------


def test_definitions_declare_the_topology_the_hub_declares() -> None:
    """Same names, types and arguments as sinks.rabbitmq.declare_topology (with the stream, on by
    default): the hub's own
    declarations must find them equivalent (the end-to-end test proves it on a real node)."""
    definitions = json.loads(DEFINITIONS.read_text())
    exchanges = {e["name"]: e for e in definitions["exchanges"]}
    unrouted = unrouted_name(DEFAULT_EXCHANGE)
    main = exchanges[DEFAULT_EXCHANGE]
    assert (main["type"], main["durable"]) == ("topic", True)
    assert main["arguments"] == {"alternate-exchange": unrouted}
    assert (exchanges[unrouted]["type"], exchanges[unrouted]["durable"]) == ("fanout", True)
    queues = {q["name"]: q for q in definitions["queues"]}
    assert queues[unrouted]["durable"] and queues[unrouted]["arguments"] == {}
    stream = queues[stream_name(DEFAULT_EXCHANGE)]
    assert stream["arguments"] == dict(StreamRetention().arguments())
    assert {(b["source"], b["destination"], b["routing_key"]) for b in definitions["bindings"]} >= {
        (DEFAULT_EXCHANGE, stream_name(DEFAULT_EXCHANGE), "#")
    }
    example = queues["example.failed-deliveries"]["arguments"]
    assert example["x-dead-letter-exchange"] in exchanges
    assert {v["name"] for v in definitions["vhosts"]} == {"/"}


# -- Kubernetes ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """``kubectl kustomize`` of a copy of deploy/kubernetes with its secrets.env filled in, as
    the README tells operators to do."""
    kubectl = tool("kubectl")
    work = tmp_path_factory.mktemp("kustomize") / "kubernetes"
    shutil.copytree(KUSTOMIZE_DIR, work)
    lines = []
    for line in (KUSTOMIZE_DIR / "secrets.env.example").read_text().splitlines():
        if line.startswith("HUB_SECRET_"):
            line += secrets.token_urlsafe(16)
        lines.append(line)
    (work / "secrets.env").write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [kubectl, "kustomize", str(work)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def of_kind(built, kind: str) -> dict[str, Any]:
    [found] = [d for d in built if d["kind"] == kind]
    return found


def test_kustomization_has_the_expected_resources(built) -> None:
    kinds = sorted(d["kind"] for d in built)
    assert kinds == sorted(
        [
            "Namespace",
            "ConfigMap",
            "Secret",
            "Service",
            "Service",
            "StatefulSet",
            "PodDisruptionBudget",
            "HorizontalPodAutoscaler",
            "RabbitmqCluster",
            "Cluster",
        ]
    )
    assert {d["metadata"].get("namespace") for d in built if d["kind"] != "Namespace"} == {
        "callback-hub"
    }


def test_every_kubernetes_resource_validates_against_the_schemas(built) -> None:
    for doc in built:
        if doc["apiVersion"].startswith(("rabbitmq.com/", "postgresql.cnpg.io/")):
            continue  # the operators' resources: checked below
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_validation_is_no_rubber_stamp(built) -> None:
    statefulset = json.loads(json.dumps(of_kind(built, "StatefulSet")))
    statefulset["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, KUBERNETES_VERSION, strict=True)


def test_rabbitmq_cluster_resource(built) -> None:
    cluster = of_kind(built, "RabbitmqCluster")
    assert cluster["apiVersion"] == "rabbitmq.com/v1beta1"
    spec = cluster["spec"]
    assert spec["replicas"] >= 3 and spec["replicas"] % 2 == 1  # quorum queues need a majority
    assert re.fullmatch(r"rabbitmq:4[\w.]*-management", spec["image"])
    assert "rabbitmq_prometheus" in spec["rabbitmq"]["additionalPlugins"]
    container = of_kind(built, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    url = urlsplit(env["HUB_RABBITMQ_URL"]["value"])
    assert url.hostname == cluster["metadata"]["name"]
    for key in ("RABBITMQ_USERNAME", "RABBITMQ_PASSWORD"):
        ref = env[key]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == f"{cluster['metadata']['name']}-default-user"


def test_hub_statefulset_probes_drain_and_journal_volume(built, tmp_path: Path) -> None:
    statefulset = of_kind(built, "StatefulSet")
    pod = statefulset["spec"]["template"]["spec"]
    [container] = pod["containers"]
    known = routes(tmp_path)
    assert container["startupProbe"]["httpGet"]["path"] == "/health/live"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert {"/health/live", "/health/ready"} <= known
    settings = of_kind(built, "ConfigMap")["data"]
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > pause + float(settings["HUB_DRAIN_TIMEOUT"])
    [claim] = statefulset["spec"]["volumeClaimTemplates"]
    [mount] = container["volumeMounts"]
    assert mount["name"] == claim["metadata"]["name"]
    assert mount["mountPath"] == settings["HUB_DATA_DIR"]
    assert pod["securityContext"]["runAsUser"] == HUB_UID and pod["securityContext"]["fsGroup"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert statefulset["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Retain"


def test_settings_and_secrets_are_real_hub_variables(built) -> None:
    fields = {f"HUB_{name.upper()}" for name in Settings.model_fields}
    settings = of_kind(built, "ConfigMap")["data"]
    assert set(settings) <= fields, set(settings) - fields
    secret = of_kind(built, "Secret")["data"]
    assert set(secret) == {f"HUB_SECRET_{p.value.upper()}" for p in Provider}
    assert all(base64.b64decode(v) for v in secret.values())


def test_disruption_budget_autoscaler_and_services_select_the_hub(built) -> None:
    statefulset = of_kind(built, "StatefulSet")
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    budget = of_kind(built, "PodDisruptionBudget")["spec"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    assert budget["maxUnavailable"] == 1
    scaler = of_kind(built, "HorizontalPodAutoscaler")["spec"]
    assert scaler["scaleTargetRef"]["kind"] == "StatefulSet"
    assert scaler["scaleTargetRef"]["name"] == statefulset["metadata"]["name"]
    assert 2 <= scaler["minReplicas"] < scaler["maxReplicas"]
    services = [d for d in built if d["kind"] == "Service"]
    for service in services:
        assert service["spec"]["selector"].items() <= labels.items()
    headless = {s["metadata"]["name"]: s for s in services}[statefulset["spec"]["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None"


# -- the shared index: CloudNativePG ------------------------------------------------------------


def strict(schema: Any) -> Any:
    """A CRD's structural schema as ``kubectl apply --validate=strict`` reads it: an object
    that lists its ``properties`` takes no other field (unless it preserves unknown ones)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    made = {k: strict(v) if k != "enum" and k != "default" else v for k, v in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        made["additionalProperties"] = False
    return made


@pytest.fixture(scope="module")
def cluster_schema() -> jsonschema.protocols.Validator:
    schema = strict(json.loads(CNPG_CLUSTER_SCHEMA.read_text()))
    return jsonschema.Draft7Validator(schema)


def test_postgres_cluster_validates_against_the_operator_s_schema(built, cluster_schema) -> None:
    cluster = of_kind(built, "Cluster")
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    cluster_schema.validate(cluster)


@pytest.mark.parametrize(
    ("where", "key", "value"),
    [
        ((), "instance", 3),  # a misspelt field
        (("storage",), "sizes", "20Gi"),
        (("postgresql", "synchronous"), "dataDurability", "always"),  # not in the enum
        (("postgresql", "parameters"), "max_connections", 200),  # parameters are strings
        (("bootstrap", "initdb"), "database", ["hub"]),
    ],
)
def test_the_cluster_schema_is_no_rubber_stamp(built, cluster_schema, where, key, value) -> None:
    cluster = json.loads(json.dumps(of_kind(built, "Cluster")))
    node = cluster["spec"]
    for step in where:
        node = node[step]
    node[key] = value
    with pytest.raises(jsonschema.ValidationError):
        cluster_schema.validate(cluster)


def test_postgres_cluster_survives_a_failover_with_what_the_replicas_claimed(built) -> None:
    """Three instances on different nodes where possible; each commit on a standby too (a
    claim lost in a failover would let another replica publish a retry again); the database
    and owner made at bootstrap; the data and the WAL on volumes."""
    spec = of_kind(built, "Cluster")["spec"]
    assert spec["instances"] >= 3
    sync = spec["postgresql"]["synchronous"]
    assert 1 <= sync["number"] < spec["instances"] and sync["dataDurability"] == "required"
    initdb = spec["bootstrap"]["initdb"]
    assert initdb["database"] and initdb["owner"]
    assert spec["storage"]["size"] and spec["walStorage"]["size"]
    assert spec["affinity"]["topologyKey"] == "kubernetes.io/hostname"
    assert re.fullmatch(r"\S+/postgresql:\d+(\.\d+)?", spec["imageName"])


def test_the_hub_s_index_url_is_the_operator_s_uri_of_the_cluster_s_database(built) -> None:
    """``HUB_INDEX_URL`` comes from the secret the operator makes for the database's owner
    (``<cluster>-app``, key ``uri``); a URI of the form the operator writes there (its -rw
    service: the primary) is one the hub's settings take, for that database."""
    cluster = of_kind(built, "Cluster")
    name, namespace = cluster["metadata"]["name"], cluster["metadata"]["namespace"]
    initdb = cluster["spec"]["bootstrap"]["initdb"]
    container = of_kind(built, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    ref = env["HUB_INDEX_URL"]["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == (f"{name}-app", "uri")
    assert ref.get("optional") is not True  # no index at all would be a hub alone, silently
    password = secrets.token_urlsafe(48)
    uri = (
        f"postgresql://{initdb['owner']}:{password}@{name}-rw.{namespace}:5432/{initdb['database']}"
    )
    assert Settings(index_url=uri).index_url is not None
    settings = of_kind(built, "ConfigMap")["data"]
    assert "HUB_INDEX_URL" not in settings  # the patch's value, not an envFrom one that would win


def test_the_cluster_and_compose_run_the_same_postgresql_major(built, compose) -> None:
    cluster = of_kind(built, "Cluster")["spec"]["imageName"].rpartition(":")[2].split(".")[0]
    assert compose["services"]["postgres"]["image"] == f"postgres:{cluster}"


def test_the_monitoring_doc_says_what_the_cluster_is(built) -> None:
    """docs/monitoring.md's description of the Cluster: its name, secret, version and sizes as
    the manifests have them."""
    doc = " ".join((ROOT / "docs" / "monitoring.md").read_text().split())  # lines joined
    cluster = of_kind(built, "Cluster")
    name, spec = cluster["metadata"]["name"], cluster["spec"]
    major = spec["imageName"].rpartition(":")[2].split(".")[0]
    assert (
        f"**Cluster `{name}`** (CloudNativePG): the replicas' shared index, PostgreSQL {major}"
        in doc
    )
    assert f"`{name}-app`, whose `uri`" in doc
    data, wal = (spec[k]["size"].removesuffix("Gi") for k in ("storage", "walStorage"))
    assert f"{data} Gi of data and {wal} Gi of WAL" in doc
    assert f"`dataDurability: {spec['postgresql']['synchronous']['dataDurability']}`" in doc
