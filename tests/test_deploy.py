"""What ships in deploy/ works as an operator would run it: the alerting rules load and pass
their unit tests in promtool (Debian's `prometheus`; `make tools` installs it), the Grafana
dashboard is a valid dashboard, and every Kubernetes manifest validates offline — the native
kinds against Kubernetes' own schemas (kubernetes-validate), KEDA's against the fields KEDA's
CRD requires — with an autoscaler and a disruption budget for every service, scaling on the
queues the service really consumes."""
import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from nameko.events import EventHandler
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR
from nameko.rpc import RPC_QUEUE_TEMPLATE, Rpc

from services.common import BACKEND_SERVICES

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
K8S = DEPLOY / "k8s"
KUBERNETES_VERSION = "1.37.0"
SERVICES = ("gateway", *BACKEND_SERVICES)


# -- Prometheus ------------------------------------------------------------------------------

def promtool():
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed: `apt-get install -y --no-install-recommends "
                    "prometheus` (Debian's package; `make tools`, run by `make test`, does when it may)")
    return path


def run_promtool(*args):
    done = subprocess.run([promtool(), *args], cwd=PROMETHEUS, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_alerting_rules_load():
    assert "SUCCESS" in run_promtool("check", "rules", "alerts.yml")


def test_the_alerting_rules_pass_their_unit_tests():
    assert "SUCCESS" in run_promtool("test", "rules", "alerts.test.yml")


def test_prometheus_loads_the_rules_docker_compose_mounts():
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    compose = yaml.safe_load((DEPLOY.parent / "docker-compose.yml").read_text())
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in mounts
    assert {job["job_name"] for job in config["scrape_configs"]} == set(SERVICES)


def test_the_availability_alerts_watch_every_service():
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    exprs = {rule["alert"]: rule["expr"] for group in rules["groups"] for rule in group["rules"]
             if "alert" in rule}
    down = re.fullmatch(r'up\{job=~"([^"]+)"\} == 0', exprs["PropdeskServiceDown"].strip())
    assert set(down.group(1).split("|")) == set(SERVICES)
    assert set(re.findall(r'absent\(up\{job="([^"]+)"\}\)', exprs["PropdeskServiceNotScraped"])) == set(SERVICES)


def test_every_alert_is_unit_tested():
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule}
    tests = yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())["tests"]
    fired = {case["alertname"] for test in tests for case in test.get("alert_rule_test", ())
             if case["exp_alerts"]}
    quiet = {case["alertname"] for test in tests for case in test.get("alert_rule_test", ())
             if not case["exp_alerts"]}
    assert alerts == fired, "each alert has a case where it fires"
    assert alerts == quiet, "and one where it does not"


# -- Grafana ---------------------------------------------------------------------------------

BUSINESS_METRICS = ("propdesk_sla_breaches_total", "propdesk_open_cases", "propdesk_arrears_units",
                    "propdesk_messages", "propdesk_outbox_oldest_age_seconds")


def test_the_dashboard_has_a_business_row_on_the_spec_metrics():
    dashboard = json.loads((DEPLOY / "grafana" / "propdesk.json").read_text())
    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    rows = [panel for panel in panels if panel["type"] == "row"]
    business = next(row for row in rows if row["title"].lower().startswith("business"))
    start = panels.index(business)
    end = next((i for i, panel in enumerate(panels) if i > start and panel["type"] == "row"), len(panels))
    exprs = " ".join(target["expr"] for panel in panels[start + 1:end] for target in panel["targets"])
    for name in BUSINESS_METRICS:
        assert re.search(rf"\b{name}\b", exprs), name
    for panel in panels:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]


# -- Kubernetes ------------------------------------------------------------------------------

def manifests():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for name in kustomization["resources"]:
        for document in yaml.safe_load_all((K8S / name).read_text()):
            if document:
                yield name, document


def by_kind(kind):
    return {document["metadata"]["name"]: document for _, document in manifests() if document["kind"] == kind}


def test_kustomization_lists_every_manifest():
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    files = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert listed == files


def test_every_kubernetes_manifest_validates_offline():
    native = 0
    for name, document in [*manifests(), ("secret.example.yaml", yaml.safe_load((K8S / "secret.example.yaml").read_text()))]:
        if document["apiVersion"].startswith("keda.sh/"):
            continue
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        native += 1
    assert native >= 2 * len(SERVICES)


# The parts of KEDA's CRDs (keda.sh/v1alpha1, KEDA 2.x) that these manifests use, as the API
# server's structural schema would check them: required fields, types, no unknown fields.
_TRIGGER = {
    "type": "object", "required": ["type", "metadata"], "additionalProperties": False,
    "properties": {
        "type": {"type": "string"}, "name": {"type": "string"},
        "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        "authenticationRef": {"type": "object", "required": ["name"],
                              "properties": {"name": {"type": "string"}, "kind": {"type": "string"}}},
        "useCachedMetrics": {"type": "boolean"},
    },
}
KEDA_SCHEMAS = {
    "ScaledObject": {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"},
            "metadata": {"type": "object", "required": ["name"]},
            "spec": {
                "type": "object", "required": ["scaleTargetRef", "triggers"], "additionalProperties": False,
                "properties": {
                    "scaleTargetRef": {"type": "object", "required": ["name"], "additionalProperties": False,
                                       "properties": {"name": {"type": "string"}, "kind": {"type": "string"},
                                                      "apiVersion": {"type": "string"},
                                                      "envSourceContainerName": {"type": "string"}}},
                    "minReplicaCount": {"type": "integer", "minimum": 0},
                    "maxReplicaCount": {"type": "integer", "minimum": 1},
                    "pollingInterval": {"type": "integer", "minimum": 1},
                    "cooldownPeriod": {"type": "integer", "minimum": 0},
                    "idleReplicaCount": {"type": "integer"},
                    "advanced": {"type": "object", "additionalProperties": False, "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": {"type": "object", "additionalProperties": False,
                                                          "properties": {"name": {"type": "string"},
                                                                         "behavior": {"type": "object"}}}}},
                    "fallback": {"type": "object", "required": ["failureThreshold", "replicas"]},
                    "triggers": {"type": "array", "minItems": 1, "items": _TRIGGER},
                },
            },
        },
    },
    "TriggerAuthentication": {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"},
            "spec": {"type": "object", "additionalProperties": False, "properties": {
                "secretTargetRef": {"type": "array", "items": {
                    "type": "object", "required": ["parameter", "name", "key"], "additionalProperties": False,
                    "properties": {"parameter": {"type": "string"}, "name": {"type": "string"},
                                   "key": {"type": "string"}}}}}},
        },
    },
}


def test_keda_objects_have_what_kedas_crds_require():
    keda = [document for _, document in manifests() if document["apiVersion"].startswith("keda.sh/")]
    assert {document["kind"] for document in keda} == set(KEDA_SCHEMAS)
    for document in keda:
        jsonschema.validate(document, KEDA_SCHEMAS[document["kind"]])
        # its own HPA's behavior is an autoscaling/v2 one
        behavior = document["spec"].get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior")
        if behavior:
            kubernetes_validate.validate(
                {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                 "metadata": {"name": "check"},
                 "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"}, "maxReplicas": 2,
                          "behavior": behavior}},
                KUBERNETES_VERSION, strict=True)


def test_every_service_has_one_autoscaler_and_a_disruption_budget():
    deployments = by_kind("Deployment")
    scaled, hpas, budgets = by_kind("ScaledObject"), by_kind("HorizontalPodAutoscaler"), by_kind("PodDisruptionBudget")
    assert set(deployments) == set(SERVICES)
    for name, deployment in deployments.items():
        assert "replicas" not in deployment["spec"], f"{name}: its autoscaler owns the replica count"
        targets = [s for s in scaled.values() if s["spec"]["scaleTargetRef"]["name"] == name] + \
                  [h for h in hpas.values() if h["spec"]["scaleTargetRef"]["name"] == name]
        # KEDA makes an HPA of its own: a second HPA on the same Deployment would fight it.
        assert len(targets) == 1, f"{name}: exactly one autoscaler, got {len(targets)}"
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        guarding = [b for b in budgets.values()
                    if b["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert len(guarding) == 1, f"{name}: one PodDisruptionBudget selects its pods"
        minimum = targets[0]["spec"].get("minReplicaCount", targets[0]["spec"].get("minReplicas"))
        assert minimum >= 2, f"{name}: a budget of one pod down needs two running"
    assert set(hpas) == {"gateway"}, "the gateway has no queue: CPU only"


def consumed_queues(service_cls):
    """The queue names Nameko declares for a service's entrypoints (nameko/rpc.py, events.py)."""
    queues = set()
    for attribute in vars(service_cls).values():
        for entrypoint in getattr(attribute, ENTRYPOINT_EXTENSIONS_ATTR, ()):
            if isinstance(entrypoint, Rpc):
                queues.add(RPC_QUEUE_TEMPLATE.format(service_cls.name))
            elif isinstance(entrypoint, EventHandler):
                queues.add(f"evt-{entrypoint.source_service}-{entrypoint.event_type}"
                           f"--{service_cls.name}.{attribute.__name__}")
    # ServiceBase's own RPCs (ping, echo)
    queues.add(RPC_QUEUE_TEMPLATE.format(service_cls.name))
    return queues


def service_classes():
    import importlib
    classes = {}
    for name in BACKEND_SERVICES:
        module = importlib.import_module(f"services.{name}.service")
        classes[name] = next(value for value in vars(module).values()
                             if isinstance(value, type) and getattr(value, "name", None) == name)
    return classes


def test_each_scaled_object_counts_exactly_its_services_queues():
    classes = service_classes()
    queues = {name: consumed_queues(cls) for name, cls in classes.items()}
    everything = set().union(*queues.values())
    assert any(queue.startswith("evt-") for queue in everything)
    for name, scaled in by_kind("ScaledObject").items():
        rabbit = [t for t in scaled["spec"]["triggers"] if t["type"] == "rabbitmq"]
        assert len(rabbit) == 1 and {t["type"] for t in scaled["spec"]["triggers"]} == {"rabbitmq", "cpu"}
        metadata = rabbit[0]["metadata"]
        assert metadata["mode"] == "QueueLength" and int(metadata["value"]) > 0
        assert (metadata["useRegex"], metadata["operation"], metadata["protocol"]) == ("true", "sum", "http")
        pattern = re.compile(metadata["queueName"])
        counted = {queue for queue in everything if pattern.fullmatch(queue)}
        assert counted == queues[name], f"{name}: counts {sorted(counted ^ queues[name])} wrongly"
        # and not the reply queues of its RPC clients, nor the event exchanges' names
        assert not pattern.fullmatch(f"rpc.reply-{name}-0b9e0a5f-3f7c-4d6b-9c1e-5e7a2d9f1c3b")
