# Pod Security Standards, "restricted" profile: hardening best practice. Each finding is a
# warning; the settings the "baseline" profile forbids are errors in pod_security.rego.
package configsync.baseline.restricted

import data.configsync.baseline.lib
import rego.v1

allowed_volume_types := {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}

# The PSS exempts Windows pods from the Linux-only checks.
linux if object.get(lib.pod.spec, ["os", "name"], "") != "windows"

warn contains {"id": "baseline.volume-types", "path": sprintf("%s.volumes[%v]", [lib.pod.path, i]), "msg": sprintf("volume %v has type %v, outside the restricted set", [object.get(v, "name", i), type])} if {
	some i, v in lib.pod.spec.volumes
	is_object(v)
	some type, _ in v
	type != "name"
	type != "hostPath" # an error in the baseline profile already
	not allowed_volume_types[type]
}

warn contains {"id": "baseline.privilege-escalation", "path": sprintf("%s.securityContext.allowPrivilegeEscalation", [x.path]), "msg": sprintf("container %v does not set allowPrivilegeEscalation: false", [x.name])} if {
	linux
	some x in lib.containers
	object.get(lib.security_context(x.c), "allowPrivilegeEscalation", true) != false
}

# runAsNonRoot: true on the pod, not overridden with false, or true on every container.
warn contains {"id": "baseline.run-as-non-root", "path": sprintf("%s.securityContext.runAsNonRoot", [x.path]), "msg": sprintf("container %v may run as root (set runAsNonRoot: true)", [x.name])} if {
	some x in lib.containers
	object.get(lib.security_context(x.c), "runAsNonRoot", object.get(lib.pod_security_context, "runAsNonRoot", false)) != true
}

warn contains {"id": "baseline.run-as-user", "path": sprintf("%s.securityContext.runAsUser", [lib.pod.path]), "msg": "pod runs as user 0 (root)"} if {
	lib.pod_security_context.runAsUser == 0
}

warn contains {"id": "baseline.run-as-user", "path": sprintf("%s.securityContext.runAsUser", [x.path]), "msg": sprintf("container %v runs as user 0 (root)", [x.name])} if {
	some x in lib.containers
	lib.security_context(x.c).runAsUser == 0
}

seccomp_types := {"RuntimeDefault", "Localhost"}

warn contains {"id": "baseline.seccomp-profile", "path": sprintf("%s.securityContext.seccompProfile.type", [x.path]), "msg": sprintf("container %v has no RuntimeDefault or Localhost seccomp profile", [x.name])} if {
	linux
	some x in lib.containers
	not seccomp_types[object.get(lib.security_context(x.c), ["seccompProfile", "type"], object.get(lib.pod_security_context, ["seccompProfile", "type"], ""))]
}

warn contains {"id": "baseline.capabilities-drop", "path": sprintf("%s.securityContext.capabilities.drop", [x.path]), "msg": sprintf("container %v does not drop ALL capabilities", [x.name])} if {
	linux
	some x in lib.containers
	not "ALL" in object.get(lib.security_context(x.c), ["capabilities", "drop"], [])
}

warn contains {"id": "baseline.capabilities-drop", "path": sprintf("%s.securityContext.capabilities.add[%v]", [x.path, i]), "msg": sprintf("container %v adds capability %v (only NET_BIND_SERVICE is allowed)", [x.name, cap])} if {
	linux
	some x in lib.containers
	some i, cap in lib.security_context(x.c).capabilities.add
	cap != "NET_BIND_SERVICE"
	in_baseline_set(cap) # capabilities outside the baseline set are errors already
}

in_baseline_set(cap) if data.configsync.baseline.pod_security.allowed_capabilities[cap]
