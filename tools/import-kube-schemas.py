#!/usr/bin/env python3
"""Imports the Kubernetes API schemas bundled by the PyPI package `kubernetes-validate` into
services/validation/kube-schemas/: one small gzip file per minor version (descriptions and
everything the validator does not read are stripped) plus `gvk-index.json`, the first and last
bundled minor version serving each group/version/kind (for the deprecation and removal rules).

Usage:
    tools/import-kube-schemas.py [SCHEMA_DIR]

SCHEMA_DIR is the package's `kubernetes-json-schema` directory (holding `v1.NN.0-local/`).
Without it, the script runs `pip download --no-deps kubernetes-validate==1.37.0` into a
temporary directory and reads the wheel. Python 3.11, standard library only. The output is
byte-for-byte reproducible (sorted keys, gzip mtime 0).
"""

import gzip
import io
import json
import pathlib
import re
import subprocess
import sys
import tempfile
import zipfile

PACKAGE = "kubernetes-validate==1.37.0"
OUT = pathlib.Path(__file__).resolve().parent.parent / "services/validation/kube-schemas"
PREFIX = "#/$defs/"
# Formats the validator checks; the rest (int64, double) say nothing JSON does not.
FORMATS = {"int32", "byte", "date-time"}
# Generic meta types that list every group as their "kind"; they are never applied.
NOT_KINDS = {
    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent",
}


def simple_type(schema):
    """The schema's type without the `null` every field allows, or None."""
    t = schema.get("type")
    if isinstance(t, list):
        rest = [x for x in t if x != "null"]
        return rest[0] if len(rest) == 1 else None
    return t


def strip(schema):
    """The parts of one schema the validator reads, in a compact form."""
    if "$ref" in schema:
        return {"$ref": schema["$ref"].removeprefix(PREFIX)}
    alternatives = schema.get("oneOf")
    if alternatives:
        kinds = sorted(simple_type(a) for a in alternatives)
        if kinds == ["integer", "string"]:
            return {"type": "int-or-string"}
        if kinds == ["number", "string"]:
            return {"type": "quantity"}
        raise SystemExit(f"unexpected oneOf: {alternatives}")
    out = {}
    t = simple_type(schema)
    if t:
        out["type"] = t
    if "properties" in schema:
        out["properties"] = {k: strip(v) for k, v in schema["properties"].items()}
    if schema.get("required"):
        out["required"] = sorted(schema["required"])
    if "items" in schema:
        out["items"] = strip(schema["items"])
    additional = schema.get("additionalProperties")
    if isinstance(additional, dict):
        out["additionalProperties"] = strip(additional)
    elif additional is not None:
        out["additionalProperties"] = additional
    if "enum" in schema:
        out["enum"] = [v for v in schema["enum"] if v is not None]
    if schema.get("format") in FORMATS:
        out["format"] = schema["format"]
    for ext in ("x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource",
                "x-kubernetes-int-or-string"):
        if schema.get(ext):
            out[ext] = True
    return out


def import_version(path):
    """(compact document, set of "apiVersion kind") for one `_definitions.json`."""
    defs = json.loads(path.read_text())["$defs"]
    out_defs = {}
    kinds = []
    for name, schema in defs.items():
        compact = strip(schema)
        gvks = schema.get("x-kubernetes-group-version-kind", [])
        if gvks and name not in NOT_KINDS:
            for gvk in gvks:
                api_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
                kinds.append([api_version, gvk["kind"], name])
            # apiVersion and kind are checked against the kind index, not per schema.
            props = compact.get("properties", {})
            for field in ("apiVersion", "kind"):
                if field in props:
                    props[field] = {"type": "string"}
        out_defs[name] = compact
    kinds.sort()
    return {"definitions": out_defs, "kinds": kinds}, {f"{a} {k}" for a, k, _ in kinds}


# Allowed values the API server enforces in Go validation but the OpenAPI documents do not
# state (they carry almost no enums): (definition, field) -> values. A typo here
# (`imagePullPolicy: Allways`) is rejected by every apiserver since before 1.25.
CORE = "io.k8s.api.core.v1."
PROTOCOLS = ["SCTP", "TCP", "UDP"]
ACCESS_MODES = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]
EFFECTS = ["NoExecute", "NoSchedule", "PreferNoSchedule"]
ENUMS = {
    (CORE + "Container", "imagePullPolicy"): ["Always", "IfNotPresent", "Never"],
    (CORE + "EphemeralContainer", "imagePullPolicy"): ["Always", "IfNotPresent", "Never"],
    (CORE + "Container", "terminationMessagePolicy"): ["FallbackToLogsOnError", "File"],
    (CORE + "PodSpec", "restartPolicy"): ["Always", "Never", "OnFailure"],
    (CORE + "PodSpec", "dnsPolicy"): ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"],
    (CORE + "ServiceSpec", "type"): ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
    (CORE + "ServiceSpec", "externalTrafficPolicy"): ["Cluster", "Local"],
    (CORE + "ServiceSpec", "internalTrafficPolicy"): ["Cluster", "Local"],
    (CORE + "ServiceSpec", "sessionAffinity"): ["ClientIP", "None"],
    (CORE + "ServiceSpec", "ipFamilyPolicy"): ["PreferDualStack", "RequireDualStack", "SingleStack"],
    (CORE + "ContainerPort", "protocol"): PROTOCOLS,
    (CORE + "ServicePort", "protocol"): PROTOCOLS,
    ("io.k8s.api.networking.v1.NetworkPolicyPort", "protocol"): PROTOCOLS,
    ("io.k8s.api.networking.v1.HTTPIngressPath", "pathType"): ["Exact", "ImplementationSpecific", "Prefix"],
    ("io.k8s.api.networking.v1.NetworkPolicySpec", "policyTypes[]"): ["Egress", "Ingress"],
    (CORE + "PersistentVolumeClaimSpec", "accessModes[]"): ACCESS_MODES,
    (CORE + "PersistentVolumeSpec", "accessModes[]"): ACCESS_MODES,
    (CORE + "PersistentVolumeClaimSpec", "volumeMode"): ["Block", "Filesystem"],
    (CORE + "PersistentVolumeSpec", "persistentVolumeReclaimPolicy"): ["Delete", "Recycle", "Retain"],
    (CORE + "Toleration", "operator"): ["Equal", "Exists"],
    (CORE + "Toleration", "effect"): EFFECTS,
    (CORE + "Taint", "effect"): EFFECTS,
    (CORE + "NodeSelectorRequirement", "operator"): ["DoesNotExist", "Exists", "Gt", "In", "Lt", "NotIn"],
    ("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement", "operator"): ["DoesNotExist", "Exists", "In", "NotIn"],
    (CORE + "SeccompProfile", "type"): ["Localhost", "RuntimeDefault", "Unconfined"],
    ("io.k8s.api.apps.v1.DeploymentStrategy", "type"): ["Recreate", "RollingUpdate"],
    ("io.k8s.api.apps.v1.StatefulSetUpdateStrategy", "type"): ["OnDelete", "RollingUpdate"],
    ("io.k8s.api.apps.v1.DaemonSetUpdateStrategy", "type"): ["OnDelete", "RollingUpdate"],
    ("io.k8s.api.apps.v1.StatefulSetSpec", "podManagementPolicy"): ["OrderedReady", "Parallel"],
    ("io.k8s.api.batch.v1.CronJobSpec", "concurrencyPolicy"): ["Allow", "Forbid", "Replace"],
    ("io.k8s.api.batch.v1.JobSpec", "completionMode"): ["Indexed", "NonIndexed"],
    ("io.k8s.api.autoscaling.v2.MetricSpec", "type"): ["ContainerResource", "External", "Object", "Pods", "Resource"],
    ("io.k8s.api.autoscaling.v2.MetricTarget", "type"): ["AverageValue", "Utilization", "Value"],
}


def add_enums(definitions):
    """Puts ENUMS into the definitions that have the field (older versions may not)."""
    for (name, field), values in ENUMS.items():
        props = definitions.get(name, {}).get("properties", {})
        if field.endswith("[]"):
            prop = props.get(field[:-2], {}).get("items")
        else:
            prop = props.get(field)
        if isinstance(prop, dict) and "$ref" not in prop:
            prop["enum"] = values


def relax(old, new):
    """Drops from `old` the required fields the newest version no longer requires.

    Older OpenAPI documents derived `required` from Go struct tags (no `omitempty`), so they
    list fields the API server defaults or never needed (StatefulSet `serviceName`,
    NetworkPolicy `podSelector`, RoleRef `apiGroup`, ...); later releases corrected the
    documents, not the servers. The newest version's list is the better truth for all.
    """
    if not isinstance(old, dict) or not isinstance(new, dict):
        return
    if "required" in old:
        kept = [r for r in old["required"] if r in new.get("required", [])]
        if kept:
            old["required"] = kept
        else:
            del old["required"]
    for key in ("items", "additionalProperties"):
        relax(old.get(key), new.get(key))
    for name, prop in old.get("properties", {}).items():
        relax(prop, new.get("properties", {}).get(name))


def write_gzip(path, data):
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    path.write_bytes(buf.getvalue())


def main():
    if len(sys.argv) > 1:
        return run(pathlib.Path(sys.argv[1]))
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--dest", tmp,
                        PACKAGE], check=True)
        wheel = next(pathlib.Path(tmp).glob("kubernetes_validate-*.whl"))
        zipfile.ZipFile(wheel).extractall(tmp)
        run(pathlib.Path(tmp) / "kubernetes_validate/kubernetes-json-schema")


def run(schema_dir):
    versions = {}
    for d in sorted(schema_dir.iterdir()):
        m = re.fullmatch(r"v1\.(\d+)\.0-local", d.name)
        if m and (d / "_definitions.json").exists():
            versions[int(m.group(1))] = d / "_definitions.json"
    if not versions:
        raise SystemExit(f"no v1.NN.0-local/_definitions.json under {schema_dir}")
    OUT.mkdir(parents=True, exist_ok=True)
    served = {}
    imported = {minor: import_version(path) for minor, path in sorted(versions.items())}
    newest = imported[max(imported)][0]["definitions"]
    for minor, (doc, kinds) in sorted(imported.items()):
        for name, schema in doc["definitions"].items():
            if name in newest:
                relax(schema, newest[name])
        add_enums(doc["definitions"])
        doc["version"] = f"1.{minor}"
        data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        target = OUT / f"v1.{minor}.json.gz"
        write_gzip(target, data)
        print(f"{target.name}: {len(doc['definitions'])} definitions, {len(kinds)} kinds, "
              f"{target.stat().st_size} bytes")
        for gvk in kinds:
            served.setdefault(gvk, []).append(minor)
    index = {
        "versions": sorted(versions),
        "kinds": {gvk: [min(m), max(m)] for gvk, m in sorted(served.items())},
    }
    # One kind a line, so a regeneration reads well in a diff.
    lines = [f" {json.dumps(gvk)}: {json.dumps(span)}" for gvk, span in index["kinds"].items()]
    text = '{"versions": %s, "kinds": {\n%s\n}}\n' % (json.dumps(index["versions"]), ",\n".join(lines))
    (OUT / "gvk-index.json").write_text(text)


if __name__ == "__main__":
    main()
