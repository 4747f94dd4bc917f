#!/usr/bin/env python3
"""Generates a realistic corpus of Kubernetes manifests for the validation benchmark.

Usage: tools/gen-manifests.py --out DIR [--objects N] [--seed S] [--per-file K]

Writes N objects (default 10000) as multi-document YAML files of about K objects each
(default 50) under DIR/manifests/, and DIR/expected.json with what was generated: object
counts per kind and the problems deliberately injected into about 10% of the objects, each
with its file, object and JSON path. The same seed always gives the same files. Point the
validator (or a baseline such as kubernetes-validate) at DIR/manifests/; expected.json sits
outside it so it is not read as a manifest.

The mix is what an application platform holds: per namespace, applications made of a
ServiceAccount, ConfigMap, Secret (fake values), Deployment (resources, probes, env from the
ConfigMap and Secret, securityContext), a Service selecting it, and often an Ingress, HPA,
PodDisruptionBudget, NetworkPolicy and Role/RoleBinding; also StatefulSets with a headless
Service and volumeClaimTemplates, and CronJobs. Every object a workload refers to is written
before it, so cutting the stream at N objects never leaves a reference dangling by accident.

Injected problems (all semantic: every file stays valid YAML and every object has
apiVersion, kind and metadata.name):
  unknown-field      a misspelt field (e.g. `imagePullPolicyy`, `metadata.lables`)
  bad-quantity       a resource quantity Kubernetes cannot parse (e.g. `512MB`, `2 cores`)
  latest-image       a container image with the `:latest` tag
  missing-configmap  a reference to a ConfigMap that no file defines
Uses only the Python standard library.
"""

import argparse
import base64
import json
import random
import re
import sys
from pathlib import Path

# Workloads (about 14% of objects) are the only kinds that can carry three of the four
# problems, so they get problems more often; together about 10% of all objects carry one.
WORKLOAD_PROBLEM_RATE = 0.35
OTHER_PROBLEM_RATE = 0.06
PROBLEMS = ("unknown-field", "bad-quantity", "latest-image", "missing-configmap")
WORKLOADS = ("Deployment", "StatefulSet", "CronJob")

TEAMS = ["payments", "search", "identity", "catalog", "checkout", "ledger", "media",
         "growth", "platform", "data", "notify", "support"]
WORDS = ["api", "web", "worker", "gateway", "indexer", "scheduler", "billing", "auth",
         "profile", "cart", "feed", "export", "import", "report", "thumbs", "mailer",
         "sync", "audit", "quota", "pricing"]
STORES = ["postgres", "redis", "kafka", "elastic", "mongo", "rabbit"]
BAD_QUANTITIES = ["512MB", "1.5Gb", "2 cores", "100mm", "lots", "1,5Gi", "256 Mi"]
MISSPELT = [("imagePullPolicyy", "IfNotPresent"), ("resource", {"limits": {"cpu": "1"}}),
            ("livenessprobe", {"tcpSocket": {"port": 8080}}), ("commands", ["/app"])]
PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./-]*")
YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if v is None:
        return "null"
    if PLAIN.fullmatch(v) and v.lower() not in YAML_WORDS:
        return v
    return json.dumps(v)  # a JSON string is a YAML double-quoted scalar


def emit(value, indent, out):
    """Block-style YAML for dicts, lists and scalars."""
    pad = " " * indent
    if isinstance(value, dict):
        for k, v in value.items():
            key = scalar(k)
            if isinstance(v, dict) and v:
                out.append(f"{pad}{key}:\n")
                emit(v, indent + 2, out)
            elif isinstance(v, list) and v:
                out.append(f"{pad}{key}:\n")
                emit(v, indent, out)
            else:
                out.append(f"{pad}{key}: {empty_or_scalar(v)}\n")
    else:
        for item in value:
            if isinstance(item, dict) and item:
                first = len(out)
                emit(item, indent + 2, out)
                out[first] = f"{pad}- " + out[first][indent + 2:]
            elif isinstance(item, list) and item:
                out.append(f"{pad}-\n")
                emit(item, indent + 2, out)
            else:
                out.append(f"{pad}- {empty_or_scalar(item)}\n")


def empty_or_scalar(v):
    if isinstance(v, dict):
        return "{}"
    if isinstance(v, list):
        return "[]"
    return scalar(v)


def meta(name, namespace, labels=None):
    m = {"name": name}
    if namespace:
        m["namespace"] = namespace
    if labels:
        m["labels"] = labels
    return m


class Corpus:
    def __init__(self, rng):
        self.rng = rng
        self.objects = []

    def add(self, obj):
        self.objects.append(obj)

    # -- building blocks -------------------------------------------------------------

    def container(self, name, image, config, secret, port=8080):
        rng = self.rng
        mem = rng.choice([128, 256, 512])
        cpu = rng.choice([50, 100, 250])
        return {
            "name": name,
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
            "env": [
                {"name": "LOG_LEVEL", "value": rng.choice(["info", "debug", "warn"])},
                {"name": "FEATURE_FLAGS",
                 "valueFrom": {"configMapKeyRef": {"name": config, "key": "features"}}},
                {"name": "DB_PASSWORD",
                 "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}},
            ],
            "envFrom": [{"configMapRef": {"name": config}}],
            "resources": {
                "requests": {"cpu": f"{cpu}m", "memory": f"{mem}Mi"},
                "limits": {"cpu": f"{cpu * 4}m", "memory": f"{mem * 2}Mi"},
            },
            "readinessProbe": {
                "httpGet": {"path": "/healthz", "port": "http"},
                "initialDelaySeconds": 5, "periodSeconds": 10,
            },
            "livenessProbe": {
                "httpGet": {"path": "/livez", "port": "http"},
                "initialDelaySeconds": 15, "periodSeconds": 20, "failureThreshold": 3,
            },
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            },
            "volumeMounts": [{"name": "config", "mountPath": "/etc/app", "readOnly": True}],
        }

    def pod_spec(self, sa, container, config):
        return {
            "serviceAccountName": sa,
            "securityContext": {
                "runAsNonRoot": True, "runAsUser": 10001, "fsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
            "volumes": [{"name": "config", "configMap": {"name": config}}],
        }

    def image(self, team, name):
        major, minor, patch = (self.rng.randint(0, 4), self.rng.randint(0, 30),
                               self.rng.randint(0, 9))
        return f"registry.example.com/{team}/{name}:{major}.{minor}.{patch}"

    def supporting(self, ns, app, labels):
        """ServiceAccount, ConfigMap and Secret, written before their workload."""
        rng = self.rng
        self.add({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(app, ns, labels),
                  "automountServiceAccountToken": False})
        self.add({"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": meta(f"{app}-config", ns, labels),
                  "data": {"features": ",".join(rng.sample(WORDS, 3)),
                           "LISTEN_ADDR": ":8080",
                           "app.properties": f"pool.size={rng.randint(2, 32)}\ncache.ttl=300\n"}})
        password = f"fake-{rng.getrandbits(64):016x}"
        self.add({"apiVersion": "v1", "kind": "Secret", "metadata": meta(f"{app}-secret", ns, labels),
                  "type": "Opaque",
                  "data": {"password": base64.b64encode(password.encode()).decode(),
                           "username": base64.b64encode(app.encode()).decode()}})

    # -- applications --------------------------------------------------------------------

    def deployment_app(self, ns, team, app):
        rng = self.rng
        labels = {"app.kubernetes.io/name": app, "app.kubernetes.io/part-of": team}
        selector = {"app.kubernetes.io/name": app}
        self.supporting(ns, app, labels)
        container = self.container(app, self.image(team, app), f"{app}-config", f"{app}-secret")
        self.add({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(app, ns, labels),
                  "spec": {"replicas": rng.randint(2, 6),
                           "revisionHistoryLimit": 5,
                           "selector": {"matchLabels": selector},
                           "strategy": {"type": "RollingUpdate",
                                        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                           "template": {"metadata": {"labels": labels},
                                        "spec": self.pod_spec(app, container, f"{app}-config")}}})
        self.add({"apiVersion": "v1", "kind": "Service", "metadata": meta(app, ns, labels),
                  "spec": {"type": "ClusterIP", "selector": selector,
                           "ports": [{"name": "http", "port": 80, "targetPort": "http",
                                      "protocol": "TCP"}]}})
        if rng.random() < 0.5:
            self.add({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                      "metadata": meta(app, ns, labels),
                      "spec": {"ingressClassName": "nginx",
                               "tls": [{"hosts": [f"{app}.{team}.example.com"],
                                        "secretName": f"{app}-tls"}],
                               "rules": [{"host": f"{app}.{team}.example.com",
                                          "http": {"paths": [{
                                              "path": "/", "pathType": "Prefix",
                                              "backend": {"service": {"name": app,
                                                                      "port": {"name": "http"}}}}]}}]}})
        if rng.random() < 0.6:
            self.add({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                      "metadata": meta(app, ns, labels),
                      "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                                  "name": app},
                               "minReplicas": 2, "maxReplicas": rng.choice([6, 10, 20]),
                               "metrics": [{"type": "Resource", "resource": {
                                   "name": "cpu",
                                   "target": {"type": "Utilization",
                                              "averageUtilization": rng.choice([60, 70, 80])}}}]}})
        if rng.random() < 0.6:
            budget = ({"minAvailable": 1} if rng.random() < 0.5 else {"maxUnavailable": "25%"})
            self.add({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                      "metadata": meta(app, ns, labels),
                      "spec": {**budget, "selector": {"matchLabels": selector}}})
        if rng.random() < 0.5:
            self.add({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                      "metadata": meta(app, ns, labels),
                      "spec": {"podSelector": {"matchLabels": selector},
                               "policyTypes": ["Ingress"],
                               "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {
                                   "kubernetes.io/metadata.name": "ingress-nginx"}}}],
                                   "ports": [{"protocol": "TCP", "port": 8080}]}]}})
        if rng.random() < 0.4:
            self.add({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                      "metadata": meta(app, ns, labels),
                      "rules": [{"apiGroups": [""], "resources": ["configmaps", "secrets"],
                                 "resourceNames": [f"{app}-config", f"{app}-secret"],
                                 "verbs": ["get", "watch"]}]})
            self.add({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                      "metadata": meta(app, ns, labels),
                      "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": app},
                      "subjects": [{"kind": "ServiceAccount", "name": app, "namespace": ns}]})

    def statefulset_app(self, ns, team, store):
        rng = self.rng
        labels = {"app.kubernetes.io/name": store, "app.kubernetes.io/part-of": team}
        selector = {"app.kubernetes.io/name": store}
        self.supporting(ns, store, labels)
        self.add({"apiVersion": "v1", "kind": "Service", "metadata": meta(f"{store}-headless", ns, labels),
                  "spec": {"clusterIP": "None", "selector": selector,
                           "ports": [{"name": "http", "port": 8080, "targetPort": "http"}]}})
        container = self.container(store, self.image(team, store), f"{store}-config",
                                   f"{store}-secret")
        container["volumeMounts"].append({"name": "data", "mountPath": "/var/lib/data"})
        self.add({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta(store, ns, labels),
                  "spec": {"serviceName": f"{store}-headless", "replicas": 3,
                           "podManagementPolicy": "Parallel",
                           "selector": {"matchLabels": selector},
                           "template": {"metadata": {"labels": labels},
                                        "spec": self.pod_spec(store, container, f"{store}-config")},
                           "volumeClaimTemplates": [{
                               "metadata": {"name": "data"},
                               "spec": {"accessModes": ["ReadWriteOnce"],
                                        "storageClassName": "standard",
                                        "resources": {"requests": {
                                            "storage": f"{rng.choice([10, 20, 50, 100])}Gi"}}}}]}})

    def cronjob_app(self, ns, team, app):
        labels = {"app.kubernetes.io/name": app, "app.kubernetes.io/part-of": team}
        self.supporting(ns, app, labels)
        container = self.container(app, self.image(team, app), f"{app}-config", f"{app}-secret")
        for probe in ("readinessProbe", "livenessProbe", "ports"):
            del container[probe]
        pod = self.pod_spec(app, container, f"{app}-config")
        pod["restartPolicy"] = "OnFailure"
        self.add({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta(app, ns, labels),
                  "spec": {"schedule": f"{self.rng.randint(0, 59)} {self.rng.randint(0, 23)} * * *",
                           "concurrencyPolicy": "Forbid",
                           "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
                           "jobTemplate": {"spec": {"backoffLimit": 2,
                                                    "template": {"metadata": {"labels": labels},
                                                                 "spec": pod}}}}})

    def namespace(self, index):
        team = TEAMS[index % len(TEAMS)]
        ns = f"{team}-{index // len(TEAMS) + 1}"
        self.add({"apiVersion": "v1", "kind": "Namespace",
                  "metadata": meta(ns, None, {"team": team,
                                              "pod-security.kubernetes.io/enforce": "restricted"})})
        rng = self.rng
        for word in rng.sample(WORDS, rng.randint(3, 6)):
            self.deployment_app(ns, team, word)
        if rng.random() < 0.7:
            self.statefulset_app(ns, team, rng.choice(STORES))
        for word in rng.sample(WORDS, rng.randint(0, 2)):
            self.cronjob_app(ns, team, f"{word}-job")


def pod_spec_of(obj):
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"], ".spec.jobTemplate.spec.template.spec"
    return spec["template"]["spec"], ".spec.template.spec"


def inject(rng, obj, problem):
    """Changes `obj` to carry `problem`; returns the JSON path of the change."""
    if problem == "unknown-field":
        if obj["kind"] in WORKLOADS:
            pod, at = pod_spec_of(obj)
            field, value = rng.choice(MISSPELT)
            pod["containers"][0][field] = value
            return f"{at}.containers[0].{field}"
        obj["metadata"]["lables"] = obj["metadata"].pop("labels", {"team": "unknown"})
        return ".metadata.lables"
    pod, at = pod_spec_of(obj)
    container = pod["containers"][0]
    if problem == "bad-quantity":
        which = rng.choice(["cpu", "memory"])
        container["resources"]["limits"][which] = rng.choice(BAD_QUANTITIES)
        return f"{at}.containers[0].resources.limits.{which}"
    if problem == "latest-image":
        container["image"] = container["image"].rsplit(":", 1)[0] + ":latest"
        return f"{at}.containers[0].image"
    if problem == "missing-configmap":
        container["envFrom"][0]["configMapRef"]["name"] = f"{obj['metadata']['name']}-settings"
        return f"{at}.containers[0].envFrom[0].configMapRef.name"
    raise ValueError(problem)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--objects", type=int, default=10000, help="how many objects")
    parser.add_argument("--seed", type=int, default=1, help="random seed")
    parser.add_argument("--per-file", type=int, default=50, help="objects per YAML file")
    args = parser.parse_args()
    if args.objects < 1 or args.per_file < 1:
        parser.error("--objects and --per-file must be positive")

    rng = random.Random(args.seed)
    corpus = Corpus(rng)
    index = 0
    while len(corpus.objects) < args.objects:
        corpus.namespace(index)
        index += 1
    del corpus.objects[args.objects:]

    manifests = args.out / "manifests"
    manifests.mkdir(parents=True, exist_ok=True)
    for old in manifests.glob("part-*.yaml"):
        old.unlink()
    counts = {p: 0 for p in PROBLEMS}
    kinds = {}
    injected = []
    files = 0
    for start in range(0, len(corpus.objects), args.per_file):
        files += 1
        name = f"part-{files:04d}.yaml"
        out = []
        for obj in corpus.objects[start:start + args.per_file]:
            kinds[obj["kind"]] = kinds.get(obj["kind"], 0) + 1
            workload = obj["kind"] in WORKLOADS
            if rng.random() < (WORKLOAD_PROBLEM_RATE if workload else OTHER_PROBLEM_RATE):
                problem = rng.choice(PROBLEMS if workload else ("unknown-field",))
                path = inject(rng, obj, problem)
                counts[problem] += 1
                # Each entry of `out` is one line; the object starts after its `---`.
                injected.append({"file": f"manifests/{name}", "line": len(out) + 2,
                                 "kind": obj["kind"],
                                 "namespace": obj["metadata"].get("namespace"),
                                 "name": obj["metadata"]["name"],
                                 "problem": problem, "path": path})
            out.append("---\n")
            emit(obj, 0, out)
        (manifests / name).write_text("".join(out), encoding="utf-8")

    expected = {"seed": args.seed, "objects": len(corpus.objects), "files": files,
                "kinds": dict(sorted(kinds.items())), "problems": counts,
                "objectsWithProblems": len(injected), "injected": injected}
    (args.out / "expected.json").write_text(json.dumps(expected, indent=2) + "\n", encoding="utf-8")
    summary = ", ".join(f"{p} {n}" for p, n in counts.items())
    print(f"gen-manifests: {len(corpus.objects)} objects in {files} files under {manifests} "
          f"(seed {args.seed}); {len(injected)} with an injected problem: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
