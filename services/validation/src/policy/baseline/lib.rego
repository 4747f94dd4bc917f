# Helpers shared by the baseline rules: where an object keeps its pod spec, and every
# container of that pod spec with its JSON path.
package configsync.baseline.lib

import rego.v1

# Kinds whose pod template is at .spec.template.
template_kinds := {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController"}

workload_kinds := template_kinds | {"Pod", "CronJob"}

# The pod spec and metadata of the object, with the JSON paths to them.
pod := {"spec": input.spec, "meta": object.get(input, "metadata", {}), "path": ".spec", "meta_path": ".metadata"} if {
	input.kind == "Pod"
	is_object(input.spec)
}

pod := {
	"spec": input.spec.template.spec,
	"meta": object.get(input.spec.template, "metadata", {}),
	"path": ".spec.template.spec",
	"meta_path": ".spec.template.metadata",
} if {
	template_kinds[input.kind]
	is_object(input.spec.template.spec)
}

pod := {
	"spec": input.spec.jobTemplate.spec.template.spec,
	"meta": object.get(input.spec.jobTemplate.spec.template, "metadata", {}),
	"path": ".spec.jobTemplate.spec.template.spec",
	"meta_path": ".spec.jobTemplate.spec.template.metadata",
} if {
	input.kind == "CronJob"
	is_object(input.spec.jobTemplate.spec.template.spec)
}

container_fields := ["initContainers", "containers", "ephemeralContainers"]

# Every container: {"c": container, "name": name, "path": ".spec...containers[0]", "field": "containers"}.
containers contains {"c": c, "name": object.get(c, "name", sprintf("%v", [i])), "path": sprintf("%s.%s[%v]", [pod.path, field, i]), "field": field} if {
	some field in container_fields
	is_array(pod.spec[field])
	some i, c in pod.spec[field]
	is_object(c)
}

# The container's securityContext, or {} when it has none.
security_context(c) := sc if {
	sc := c.securityContext
	is_object(sc)
} else := {}

# The pod's securityContext, or {} when it has none.
pod_security_context := sc if {
	sc := pod.spec.securityContext
	is_object(sc)
} else := {}
