#!/usr/bin/env python3
"""Lints and renders the Helm chart in helm/hookbridge with real Helm (the Helm v4 Go SDK
through PyPI's helm-python-sdk: no helm binary, no cluster) and asserts on the manifests.

Usage: python3 scripts/validate_helm.py      (scripts/validate-deploy.sh installs what it needs:
helm-python-sdk, PyYAML and kubernetes-validate)

Scenarios rendered: the default values; replicaCount 3 + serviceMonitor + autoscaling;
replicaCount 3 alone; a customised set (drain timeout, SASL properties, extra secrets); and
values the chart must refuse. For each: helm lint (strict), the kinds present, Kubernetes
schema validation (strict, oldest and newest schema shipped by kubernetes-validate), probes,
grace period, ConfigMap contents (hookbridge.toml parsed as TOML against
src/config/defaults.toml, connector files), mounts, secret handling, non-root security
context, selectors. When a built hookbridge binary is found (HOOKBRIDGE_BIN, or the cargo
target directory), `hookbridge check` also validates every rendered configuration.
Exits non-zero when any assertion fails.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

try:  # optional, but installed by scripts/validate-deploy.sh
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError
except ImportError:  # pragma: no cover
    kubernetes_validate = None

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "hookbridge"
DEFAULTS = tomllib.loads((ROOT / "src" / "config" / "defaults.toml").read_text())
RELEASE, NAMESPACE = "hookbridge-ci", "hookbridge"
CONFIG_PATH = "/etc/hookbridge/hookbridge.toml"
APP_VERSION = str(yaml.safe_load((CHART / "Chart.yaml").read_text()).get("appVersion"))
# Keys whose values are secrets in connector files and librdkafka properties.
SECRET_KEY = re.compile(r"(secret|password|token|key_pem|private|credential)", re.I)
SECRET_REF = re.compile(r"^(\$\{[A-Za-z_][A-Za-z0-9_]*\}|file:/.+)$")
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Report:
    def __init__(self) -> None:
        self.passed = 0
        self.failed: list[str] = []
        self.notes: list[str] = []
        self.scope = ""

    def check(self, ok: bool, what: str, detail: Any = "") -> bool:
        if ok:
            self.passed += 1
        else:
            msg = f"[{self.scope}] {what}" + (f": {detail}" if detail != "" else "")
            self.failed.append(msg)
            print(f"  FAIL {msg}", file=sys.stderr)
        return ok


R = Report()


def demo_secret_values() -> set[str]:
    """The demo secrets of scripts/demo and docker-compose.yml: must never reach the chart."""
    values = set(re.findall(r'^export [A-Z_]+="([^"]+)"', (ROOT / "scripts" / "demo").read_text(), re.M))
    compose = ROOT / "docker-compose.yml"
    if compose.exists():
        values |= {str(v) for v in (yaml.safe_load(compose.read_text()).get("x-demo-secrets") or {}).values()}
    return values


def render(values: dict[str, Any] | None) -> tuple[dict[str, str], list[dict[str, Any]]]:
    with helm.Chart.load(CHART) as chart:
        out = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs: list[dict[str, Any]] = []
    for path, text in sorted(out.items()):
        if path.endswith(".txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc["__template__"] = path
                docs.append(doc)
    return out, docs


def merged_values(values: dict[str, Any] | None) -> dict[str, Any]:
    with helm.Chart.load(CHART) as chart:
        return chart.merge_values(values)


def lint(values: dict[str, Any] | None) -> None:
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE)
    problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    R.check(not report.get("errors") and not problems, "helm lint --strict is clean",
            report.get("errors") or problems)
    R.check(report.get("total_charts_linted") == 1, "helm lint linted the chart", report)


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    found = [d for d in docs if d.get("kind") == kind]
    if not R.check(len(found) == 1, f"exactly one {kind}", [d["metadata"]["name"] for d in found]):
        return None
    return found[0]


def strip(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "__template__"}


def schema_validate(docs: list[dict[str, Any]]) -> None:
    if kubernetes_validate is None:
        R.notes.append("Kubernetes schema validation skipped: kubernetes-validate is not installed")
        return
    versions = sorted({v for v in kubernetes_validate.utils.all_versions()},
                      key=lambda v: tuple(int(x) for x in v.split(".")))
    for version in (versions[0], versions[-1]):
        for doc in docs:
            try:
                kubernetes_validate.validate(strip(doc), version, strict=True)
            except SchemaNotFoundError:
                R.check(doc["apiVersion"].startswith("monitoring.coreos.com/"),
                        f"a schema exists for {doc['kind']} ({doc['apiVersion']})", version)
            except Exception as e:  # ValidationError and friends
                R.check(False, f"{doc['kind']} is valid for Kubernetes {version}",
                        getattr(e, "message", str(e)).splitlines()[0])
            else:
                R.check(True, "")


def port_number(container: dict[str, Any], port: Any) -> int | None:
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p["containerPort"]
    return None


def toml_key_paths(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every leaf key of a parsed TOML document as "a.b.c" -> value (kafka.properties kept whole)."""
    out: dict[str, Any] = {}
    for k, v in table.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and path != "kafka.properties":
            out.update(toml_key_paths(v, path + "."))
        else:
            out[path] = v
    return out


def check_settings(text: str, vals: dict[str, Any]) -> dict[str, Any] | None:
    try:
        settings = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        R.check(False, "hookbridge.toml parses as TOML", e)
        return None
    R.check(True, "")
    R.check(isinstance(settings.get("kafka"), dict), "hookbridge.toml has a [kafka] table")
    kafka = settings.get("kafka", {})
    brokers = vals["kafka"]["brokers"]
    if isinstance(brokers, list):
        brokers = ",".join(brokers)
    R.check(kafka.get("brokers") == brokers, "[kafka] brokers comes from kafka.brokers",
            kafka.get("brokers"))
    R.check(settings.get("shutdown", {}).get("drain_timeout") == f"{int(vals['drainTimeoutSeconds'])}s",
            "[shutdown] drain_timeout comes from drainTimeoutSeconds", settings.get("shutdown"))
    R.check(settings.get("connectors_dir") == "connectors", "connectors_dir is connectors",
            settings.get("connectors_dir"))
    for section, port in (("http", "http"), ("admin", "admin")):
        listen = settings.get(section, {}).get("listen", "")
        R.check(listen.rsplit(":", 1)[-1] == str(vals["containerPorts"][port]),
                f"[{section}] listen uses containerPorts.{port}", listen)
    # hookbridge rejects unknown keys (deny_unknown_fields): every key must be one of
    # defaults.toml's, with the same TOML type (an integer stays an integer, not 1024.0).
    # Settings with no default (off unless set) are known too, with their type.
    known = toml_key_paths(DEFAULTS) | {"admin.console.token": ""}
    for key, value in toml_key_paths(settings).items():
        if not R.check(key in known, "hookbridge.toml has only known keys", key):
            continue
        R.check(type(value) is type(known[key]), f"hookbridge.toml {key} has the type of the default",
                f"{value!r} vs default {known[key]!r}")
    for name, value in kafka.get("properties", {}).items():
        R.check(isinstance(value, str), f"kafka.properties.{name} is a string", value)
        if SECRET_KEY.search(name):
            R.check(bool(SECRET_REF.match(value)), f"kafka.properties.{name} is a ${{ENV}} or file: reference")
    return settings


def secret_fields(node: Any, path: str = "") -> list[tuple[str, Any]]:
    """(path, value) for every value under a key that names a secret."""
    found: list[tuple[str, Any]] = []
    if isinstance(node, dict):
        for k, v in node.items():
            p = f"{path}.{k}" if path else k
            if SECRET_KEY.search(k):
                found.extend((p, x) for x in (v if isinstance(v, list) else [v]))
            else:
                found.extend(secret_fields(v, p))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found.extend(secret_fields(v, f"{path}[{i}]"))
    return found


def mounted_files(container: dict[str, Any], volumes: list[dict[str, Any]], configmap: str) -> dict[str, str]:
    """Path in the container -> ConfigMap key, for every mount of the ConfigMap."""
    by_name = {v["name"]: v for v in volumes}
    files: dict[str, str] = {}
    for m in container.get("volumeMounts", []):
        vol = by_name.get(m["name"], {})
        cm = vol.get("configMap")
        if not cm or cm.get("name") != configmap:
            continue
        items = {i["path"]: i["key"] for i in cm.get("items", [])} or None
        mount = m["mountPath"].rstrip("/")
        if "subPath" in m:
            key = items.get(m["subPath"]) if items else m["subPath"]
            if key:
                files[mount] = key
            continue
        for path, key in (items or {}).items():
            files[f"{mount}/{path}"] = key
        if items is None:
            files[f"{mount}/*"] = "*"
    return files


def check_common(label: str, values: dict[str, Any] | None, out: dict[str, str],
                 docs: list[dict[str, Any]]) -> dict[str, Any]:
    """Assertions every rendering must pass. Returns facts for the scenario checks."""
    vals = merged_values(values)
    facts: dict[str, Any] = {"vals": vals}
    kinds = sorted(d["kind"] for d in docs)
    facts["kinds"] = kinds
    R.check(not any(d["kind"] == "Secret" for d in docs), "the chart renders no Secret")
    for d in docs:
        R.check(d["metadata"].get("name", "").startswith(RELEASE), f"{d['kind']} is named after the release",
                d["metadata"].get("name"))
    schema_validate(docs)

    dep, svc, cm = one(docs, "Deployment"), one(docs, "Service"), one(docs, "ConfigMap")
    if not (dep and svc and cm):
        return facts
    facts.update(deployment=dep, service=svc, configmap=cm)
    pod = dep["spec"]["template"]
    spec = pod["spec"]
    pod_labels = pod["metadata"].get("labels", {})
    selector = dep["spec"]["selector"]["matchLabels"]
    R.check(selector.items() <= pod_labels.items(), "Deployment selector matches its pod labels")
    R.check(svc["spec"]["selector"].items() <= pod_labels.items(), "Service selector matches the pods")
    containers = spec["containers"]
    if not R.check(len(containers) == 1, "one container", len(containers)):
        return facts
    c = containers[0]
    facts["container"] = c

    # Command line and image.
    args = c.get("command", []) + c.get("args", [])
    R.check(args[:1] == ["run"] or "run" in args, "container runs `hookbridge run`", args)
    R.check("--config" in args and args[args.index("--config") + 1] == CONFIG_PATH,
            f"container reads --config {CONFIG_PATH}", args)
    R.check(c["image"].endswith(":" + str(vals["image"]["tag"] or APP_VERSION)), "image tag", c["image"])

    # Ports, probes.
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    R.check(ports.get("http") == vals["containerPorts"]["http"], "container port http", ports)
    R.check(ports.get("admin") == vals["containerPorts"]["admin"], "container port admin", ports)
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = (c.get(probe) or {}).get("httpGet") or {}
        R.check(get.get("path") == path, f"{probe} is GET {path}", get)
        R.check(port_number(c, get.get("port")) == ports.get("admin"), f"{probe} is on the admin port", get)

    # Graceful shutdown.
    drain = int(vals["drainTimeoutSeconds"])
    pre_stop = int(vals.get("preStopSleepSeconds") or 0)
    grace = spec.get("terminationGracePeriodSeconds")
    facts["grace"] = grace
    R.check(isinstance(grace, int) and grace > drain + pre_stop,
            "terminationGracePeriodSeconds > preStop sleep + drainTimeoutSeconds", (grace, pre_stop, drain))

    # Service.
    sports = {p["name"]: p for p in svc["spec"]["ports"]}
    R.check(svc["spec"].get("type", "ClusterIP") == vals["service"]["type"], "Service type", svc["spec"].get("type"))
    for name in ("http", "admin"):
        p = sports.get(name, {})
        R.check(p.get("port") == vals["service"]["ports"][name] and p.get("targetPort") in (name, ports.get(name)),
                f"Service port {name} -> container port {name}", p)

    # ConfigMap: hookbridge.toml and the connector files, mounted where hookbridge looks.
    data = cm.get("data", {})
    R.check("hookbridge.toml" in data, "ConfigMap holds hookbridge.toml", sorted(data))
    settings = check_settings(data.get("hookbridge.toml", ""), vals)
    facts["settings"] = settings
    files = mounted_files(c, spec.get("volumes", []), cm["metadata"]["name"])
    facts["files"] = files
    R.check(files.get(CONFIG_PATH) == "hookbridge.toml", f"{CONFIG_PATH} is the ConfigMap's hookbridge.toml", files)
    connectors: dict[str, dict[str, Any]] = {}
    for name, text in sorted((vals.get("connectors") or {}).items()):
        R.check(data.get(name, "").strip() == text.strip(), f"ConfigMap holds connector {name} verbatim")
        R.check(files.get(f"/etc/hookbridge/connectors/{name}") == name,
                f"connector {name} is mounted at /etc/hookbridge/connectors/{name}", files)
        try:
            parsed = tomllib.loads(data.get(name, ""))
        except tomllib.TOMLDecodeError as e:
            R.check(False, f"connector {name} parses as TOML", e)
            continue
        R.check(len(set(parsed) & {"source", "sink"}) == 1, f"connector {name} has one [source] or [sink]",
                sorted(parsed))
        connectors[name] = parsed
    facts["connectors"] = connectors
    names = [p[k]["name"] for p in connectors.values() for k in ("source", "sink") if k in p]
    R.check(len(names) == len(set(names)), "connector names are unique", names)
    R.check(bool(connectors), "at least one connector")
    ro = [m for m in c.get("volumeMounts", []) if m["mountPath"].startswith("/etc/hookbridge")]
    R.check(bool(ro) and all(m.get("readOnly") for m in ro), "config mounts are read-only", ro)
    digest = (pod["metadata"].get("annotations") or {}).get("checksum/config", "")
    facts["checksum"] = digest
    cm_text = next((t for p, t in out.items() if p.endswith("/configmap.yaml")), "")
    R.check(digest == hashlib.sha256(cm_text.encode()).hexdigest(),
            "checksum/config annotation is the ConfigMap's sha256", digest)

    # Secrets: env from secretKeyRef, no literal anywhere.
    env = {e["name"]: e for e in c.get("env", [])}
    for want in vals.get("secretEnv") or []:
        e = env.get(want["name"], {})
        ref = (e.get("valueFrom") or {}).get("secretKeyRef") or {}
        R.check("value" not in e and ref.get("name") == want["secretName"] and ref.get("key") == want["key"],
                f"env {want['name']} comes from secretKeyRef {want['secretName']}/{want['key']}", e)
    for name, e in env.items():
        if SECRET_KEY.search(name):
            R.check("value" not in e, f"secret-looking env {name} has no literal value", e)
    provided = set(env) | {"HOSTNAME"}
    referenced: set[str] = set()
    for name, parsed in connectors.items():
        for path, value in secret_fields(parsed):
            R.check(isinstance(value, str) and bool(SECRET_REF.match(value)),
                    f"connector {name} {path} is a ${{ENV}} or file: reference, not a literal", "<redacted>")
        referenced |= set(ENV_REF.findall(yaml.safe_dump(parsed)))
    if settings:
        referenced |= set(ENV_REF.findall(yaml.safe_dump(settings)))
    if not vals.get("existingSecret"):
        R.check(referenced <= provided, "every ${ENV} the config references is set in the pod",
                sorted(referenced - provided))
    rendered = "\n".join(out.values())
    leaked = [s for s in demo_secret_values() if s in rendered]
    R.check(not leaked, "no demo secret value appears in the rendered chart", f"{len(leaked)} found")

    # Non-root, locked down.
    psc, csc = spec.get("securityContext") or {}, c.get("securityContext") or {}
    run_as_user = csc.get("runAsUser", psc.get("runAsUser"))
    R.check(csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, "runAsNonRoot: true", (psc, csc))
    R.check(isinstance(run_as_user, int) and run_as_user > 0, "runs as a non-zero UID", run_as_user)
    R.check(csc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem: true", csc)
    R.check(csc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation: false", csc)
    R.check("ALL" in ((csc.get("capabilities") or {}).get("drop") or []), "all capabilities dropped", csc)
    R.check(spec.get("automountServiceAccountToken") is False, "no service account token mounted")
    return facts


def check_scaled(facts: dict[str, Any], docs: list[dict[str, Any]]) -> None:
    vals = facts["vals"]
    dep, c = facts.get("deployment"), facts.get("container", {})
    pod_labels = dep["spec"]["template"]["metadata"]["labels"] if dep else {}
    R.check(dep is not None and "replicas" not in dep["spec"], "with an HPA the Deployment leaves replicas unset")
    hpa = one(docs, "HorizontalPodAutoscaler")
    if hpa:
        R.check(hpa["apiVersion"] == "autoscaling/v2", "HPA is autoscaling/v2", hpa["apiVersion"])
        ref = hpa["spec"]["scaleTargetRef"]
        R.check(ref.get("kind") == "Deployment" and dep and ref.get("name") == dep["metadata"]["name"],
                "HPA scales the Deployment", ref)
        R.check(hpa["spec"]["minReplicas"] == vals["autoscaling"]["minReplicas"]
                and hpa["spec"]["maxReplicas"] == vals["autoscaling"]["maxReplicas"], "HPA min/max from values")
        cpu = [m for m in hpa["spec"].get("metrics", []) if m.get("resource", {}).get("name") == "cpu"]
        R.check(bool(cpu), "HPA scales on CPU", hpa["spec"].get("metrics"))
        R.check(bool((c.get("resources") or {}).get("requests", {}).get("cpu")),
                "the container requests CPU (HPA utilisation needs it)")
    pdb = one(docs, "PodDisruptionBudget")
    if pdb:
        R.check(pdb["spec"].get("minAvailable") == 1, "PDB minAvailable: 1", pdb["spec"])
        R.check(pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items(), "PDB selects the pods")
    sm = one(docs, "ServiceMonitor")
    if sm and facts.get("service"):
        svc = facts["service"]
        R.check(sm["apiVersion"] == "monitoring.coreos.com/v1", "ServiceMonitor is monitoring.coreos.com/v1")
        R.check(sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items(),
                "ServiceMonitor selects the Service")
        eps = sm["spec"].get("endpoints", [])
        R.check(any(e.get("port") == "admin" and e.get("path", "/metrics") == "/metrics" for e in eps),
                "ServiceMonitor scrapes admin /metrics", eps)
        R.check(NAMESPACE in sm["spec"].get("namespaceSelector", {}).get("matchNames", [NAMESPACE]),
                "ServiceMonitor looks in the release namespace")


def find_binary() -> Path | None:
    if os.environ.get("HOOKBRIDGE_BIN"):
        return Path(os.environ["HOOKBRIDGE_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR") or Path.home() / ".cache" / "hookbridge-target")
    candidates = [target / p / "hookbridge" for p in ("release", "debug")]
    candidates += [ROOT / "target" / p / "hookbridge" for p in ("release", "debug")]
    found = [p for p in candidates if p.is_file() and os.access(p, os.X_OK)]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def hookbridge_check(binary: Path | None, label: str, facts: dict[str, Any]) -> None:
    """`hookbridge check` on the rendered files, laid out as the pod sees them."""
    cm = facts.get("configmap")
    if binary is None or cm is None:
        return
    data = cm["data"]
    with tempfile.TemporaryDirectory() as tmp:
        etc = Path(tmp) / "etc" / "hookbridge"
        for path, key in facts["files"].items():
            if not path.startswith("/etc/hookbridge/"):
                continue
            dest = etc / path.removeprefix("/etc/hookbridge/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(data[key])
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKBRIDGE__")}
        for e in facts.get("container", {}).get("env", []):
            env[e["name"]] = e.get("value", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        proc = subprocess.run([str(binary), "check", "--config", str(etc / "hookbridge.toml")],
                              env=env, capture_output=True, text=True, timeout=60)
        R.check(proc.returncode == 0, "`hookbridge check` accepts the rendered configuration",
                (proc.stderr or proc.stdout).strip()[-500:])


def must_fail(label: str, values: dict[str, Any], why: str) -> None:
    try:
        render(values)
    except helm.HelmError as e:
        R.check(why in str(e), f"rendering with {label} fails naming the problem", str(e)[-300:])
    else:
        R.check(False, f"rendering with {label} fails")


def main() -> int:
    print(f"helm-python-sdk {helm.__version__} (Helm SDK {helm.helm_sdk_version()}), chart {CHART.relative_to(ROOT)}")
    binary = find_binary()
    with helm.Chart.load(CHART) as chart:
        meta = chart.metadata
    R.scope = "Chart.yaml"
    R.check(meta.get("apiVersion") == "v2", "Chart.yaml apiVersion v2", meta.get("apiVersion"))
    R.check(meta.get("appVersion") == "0.1.0", "appVersion 0.1.0", meta.get("appVersion"))

    scenarios: list[tuple[str, dict[str, Any] | None]] = [
        ("defaults", None),
        ("scaled", {"replicaCount": 3, "serviceMonitor": {"enabled": True}, "autoscaling": {"enabled": True}}),
        ("replicas3", {"replicaCount": 3}),
        ("brokers-list", {"kafka": {"brokers": ["b-1.kafka:9092", "b-2.kafka:9092"]}}),
        ("ipv6", {"bindAddress": "::", "config": {"admin": {"console": {"token": "${CONSOLE_TOKEN}"}}},
                  "secretEnv": [{"name": "GITHUB_SECRET", "secretName": "hookbridge-secrets", "key": "github-secret"},
                                {"name": "CONSOLE_TOKEN", "secretName": "console", "key": "token"}]}),
        ("custom", {
            "drainTimeoutSeconds": 60,
            "preStopSleepSeconds": 0,
            "kafka": {"brokers": "b-1.kafka:9096,b-2.kafka:9096"},
            "config": {"http": {"max_in_flight": 2048},
                       "kafka": {"properties": {"security.protocol": "SASL_SSL",
                                                "sasl.mechanisms": "SCRAM-SHA-512",
                                                "sasl.username": "hookbridge",
                                                "sasl.password": "${KAFKA_PASSWORD}"}}},
            "secretEnv": [{"name": "GITHUB_SECRET", "secretName": "hookbridge-secrets", "key": "github-secret"},
                          {"name": "DEMO_WHSEC", "secretName": "receiver", "key": "whsec"},
                          {"name": "KAFKA_PASSWORD", "secretName": "kafka-user", "key": "password"}],
            # Helm merges maps with the defaults: null drops the example connector.
            "connectors": {"github.toml": None,
                           "10-github.toml": (ROOT / "connectors" / "github.toml").read_text(),
                           "20-demo-receiver.toml": (ROOT / "connectors" / "demo-receiver.toml").read_text()},
        }),
    ]

    summary = []
    results: dict[str, dict[str, Any]] = {}
    for label, values in scenarios:
        R.scope = label
        before = len(R.failed)
        lint(values)
        try:
            out, docs = render(values)
        except helm.HelmError as e:
            R.check(False, "chart renders", e)
            continue
        facts = check_common(label, values, out, docs)
        results[label] = facts
        kinds = facts["kinds"]
        base = {"ConfigMap", "Deployment", "Service"}
        if label == "defaults":
            R.check(set(kinds) == base, "defaults render Deployment, Service, ConfigMap only", kinds)
            dep = facts.get("deployment")
            R.check(dep is not None and dep["spec"].get("replicas") == 1, "defaults run one replica")
            srcs = [n for n, p in facts.get("connectors", {}).items() if "source" in p]
            R.check(len(srcs) == 1, "defaults ship one example source connector", srcs)
        elif label == "scaled":
            want = base | {"ServiceMonitor", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
            R.check(set(kinds) == want, "scaled values add ServiceMonitor, HPA, PDB", kinds)
            check_scaled(facts, docs)
        elif label == "replicas3":
            R.check(set(kinds) == base | {"PodDisruptionBudget"}, "3 fixed replicas add a PDB only", kinds)
            dep = facts.get("deployment")
            R.check(dep is not None and dep["spec"].get("replicas") == 3, "Deployment runs 3 replicas")
        elif label == "ipv6":
            s = facts.get("settings") or {}
            R.check(s.get("http", {}).get("listen") == "[::]:8080", "an IPv6 bindAddress is bracketed",
                    s.get("http"))
            R.check(s.get("admin", {}).get("listen") == "[::]:9090", "the admin listener too", s.get("admin"))
        elif label == "custom":
            R.check(facts.get("grace") == 70, "grace period is drain 60 + preStop 0 + 10", facts.get("grace"))
            c = facts.get("container", {})
            R.check("lifecycle" not in c, "preStopSleepSeconds 0 drops the preStop hook", c.get("lifecycle"))
            s = facts.get("settings") or {}
            R.check(s.get("http", {}).get("max_in_flight") == 2048, "an integer setting stays an integer",
                    s.get("http"))
            R.check(s.get("kafka", {}).get("properties", {}).get("sasl.password") == "${KAFKA_PASSWORD}",
                    "dotted librdkafka property names survive", s.get("kafka"))
            R.check(facts.get("checksum") != results.get("defaults", {}).get("checksum"),
                    "a config change changes checksum/config")
        hookbridge_check(binary, label, facts)
        summary.append(f"  {label:<10} {'ok  ' if len(R.failed) == before else 'FAIL'} "
                       f"{', '.join(sorted(set(kinds)))}")

    R.scope = "refused"
    must_fail("a connector not named *.toml", {"connectors": {"github.txt": "[source]\n"}}, "must end in .toml")
    must_fail("no connectors", {"connectors": None}, "at least one connector")
    must_fail("config.kafka.brokers", {"config": {"kafka": {"brokers": "x:9092"}}}, "set by the chart")
    must_fail("brokers-empty-list", {"kafka": {"brokers": []}}, "an empty list")
    must_fail("brokers-list-of-maps", {"kafka": {"brokers": [{"host": "a", "port": 9092}]}},
              "a host:port string")
    must_fail("a secretEnv entry without key", {"secretEnv": [{"name": "X", "secretName": "s"}]},
              "key is required")
    must_fail("a literal Kafka password", {"config": {"kafka": {"properties": {"sasl.password": "hunter2"}}}},
              "config.kafka.properties.sasl.password holds a literal secret")
    must_fail("a literal console token", {"config": {"admin": {"console": {"token": "t0k3n-literal-000000"}}}},
              "config.admin.console.token holds a literal secret")
    for label, values, secret in [("a literal Kafka password", {"config": {"kafka": {"properties": {"sasl.password": "hunter2"}}}}, "hunter2")]:
        try:
            render(values)
        except helm.HelmError as e:
            R.check(secret not in str(e), f"refusing {label} does not print it", str(e)[-300:])

    print("rendered scenarios:")
    print("\n".join(summary))
    if binary is None:
        R.notes.append("`hookbridge check` of the rendered configs skipped: no built binary "
                       "(set HOOKBRIDGE_BIN or build with cargo first)")
    else:
        print(f"`hookbridge check` run with {binary}")
    for n in R.notes:
        print(f"note: {n}")
    if R.failed:
        print(f"validate_helm: {R.passed} passed, {len(R.failed)} failed", file=sys.stderr)
        for f in R.failed:
            print(f"  - {f}", file=sys.stderr)
        return 1
    print(f"validate_helm: {R.passed} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
