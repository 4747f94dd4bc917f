# Pod Security Standards, "baseline" profile (kubernetes.io/docs/concepts/security/pod-security-standards):
# the settings that allow known privilege escalations. Each finding is an error.
package configsync.baseline.pod_security

import data.configsync.baseline.lib
import rego.v1

allowed_capabilities := {
	"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
	"NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}

safe_sysctls := {
	"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
	"net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
	"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
	"net.ipv4.tcp_keepalive_probes",
}

selinux_types := {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}

apparmor_types := {"RuntimeDefault", "Localhost"}

apparmor_annotation_prefix := "container.apparmor.security.beta.kubernetes.io/"

host_namespaces := {"hostNetwork": "baseline.host-network", "hostPID": "baseline.host-pid", "hostIPC": "baseline.host-ipc"}

deny contains {"id": id, "path": sprintf("%s.%s", [lib.pod.path, field]), "msg": sprintf("pod shares the host's namespace (%s: true)", [field])} if {
	some field, id in host_namespaces
	lib.pod.spec[field] == true
}

deny contains {"id": "baseline.privileged", "path": sprintf("%s.securityContext.privileged", [x.path]), "msg": sprintf("container %v is privileged", [x.name])} if {
	some x in lib.containers
	lib.security_context(x.c).privileged == true
}

deny contains {"id": "baseline.host-process", "path": sprintf("%s.securityContext.windowsOptions.hostProcess", [x.path]), "msg": sprintf("container %v is a Windows HostProcess container", [x.name])} if {
	some x in lib.containers
	lib.security_context(x.c).windowsOptions.hostProcess == true
}

deny contains {"id": "baseline.host-process", "path": sprintf("%s.securityContext.windowsOptions.hostProcess", [lib.pod.path]), "msg": "pod runs Windows HostProcess containers"} if {
	lib.pod_security_context.windowsOptions.hostProcess == true
}

deny contains {"id": "baseline.capabilities", "path": sprintf("%s.securityContext.capabilities.add[%v]", [x.path, i]), "msg": sprintf("container %v adds capability %v, outside the baseline's allowed set", [x.name, cap])} if {
	some x in lib.containers
	some i, cap in lib.security_context(x.c).capabilities.add
	not allowed_capabilities[cap]
}

deny contains {"id": "baseline.host-path", "path": sprintf("%s.volumes[%v].hostPath", [lib.pod.path, i]), "msg": sprintf("volume %v mounts a host path", [object.get(v, "name", i)])} if {
	some i, v in lib.pod.spec.volumes
	is_object(v)
	v.hostPath
}

deny contains {"id": "baseline.host-ports", "path": sprintf("%s.ports[%v].hostPort", [x.path, i]), "msg": sprintf("container %v binds host port %v", [x.name, p.hostPort])} if {
	some x in lib.containers
	some i, p in x.c.ports
	p.hostPort != 0
}

deny contains {"id": "baseline.proc-mount", "path": sprintf("%s.securityContext.procMount", [x.path]), "msg": sprintf("container %v uses procMount %v (only Default is allowed)", [x.name, m])} if {
	some x in lib.containers
	m := lib.security_context(x.c).procMount
	m != "Default"
}

deny contains {"id": "baseline.sysctls", "path": sprintf("%s.securityContext.sysctls[%v]", [lib.pod.path, i]), "msg": sprintf("sysctl %v is not in the safe set", [s.name])} if {
	some i, s in lib.pod_security_context.sysctls
	not safe_sysctls[s.name]
}

deny contains {"id": "baseline.seccomp", "path": sprintf("%s.securityContext.seccompProfile.type", [lib.pod.path]), "msg": "pod sets seccomp Unconfined"} if {
	lib.pod_security_context.seccompProfile.type == "Unconfined"
}

deny contains {"id": "baseline.seccomp", "path": sprintf("%s.securityContext.seccompProfile.type", [x.path]), "msg": sprintf("container %v sets seccomp Unconfined", [x.name])} if {
	some x in lib.containers
	lib.security_context(x.c).seccompProfile.type == "Unconfined"
}

# SELinux: the type may only be one of the container types; user and role may not be set.
selinux_violation(opts) if not selinux_types[object.get(opts, "type", "")]

selinux_violation(opts) if object.get(opts, "user", "") != ""

selinux_violation(opts) if object.get(opts, "role", "") != ""

deny contains {"id": "baseline.selinux", "path": sprintf("%s.securityContext.seLinuxOptions", [lib.pod.path]), "msg": "pod sets a custom SELinux type, user or role"} if {
	selinux_violation(lib.pod_security_context.seLinuxOptions)
}

deny contains {"id": "baseline.selinux", "path": sprintf("%s.securityContext.seLinuxOptions", [x.path]), "msg": sprintf("container %v sets a custom SELinux type, user or role", [x.name])} if {
	some x in lib.containers
	selinux_violation(lib.security_context(x.c).seLinuxOptions)
}

deny contains {"id": "baseline.apparmor", "path": sprintf("%s.securityContext.appArmorProfile.type", [lib.pod.path]), "msg": sprintf("pod sets AppArmor profile %v", [t])} if {
	t := lib.pod_security_context.appArmorProfile.type
	not apparmor_types[t]
}

deny contains {"id": "baseline.apparmor", "path": sprintf("%s.securityContext.appArmorProfile.type", [x.path]), "msg": sprintf("container %v sets AppArmor profile %v", [x.name, t])} if {
	some x in lib.containers
	t := lib.security_context(x.c).appArmorProfile.type
	not apparmor_types[t]
}

deny contains {"id": "baseline.apparmor", "path": sprintf("%s.annotations", [lib.pod.meta_path]), "msg": sprintf("annotation %v sets AppArmor profile %v", [key, value])} if {
	some key, value in lib.pod.meta.annotations
	startswith(key, apparmor_annotation_prefix)
	is_string(value)
	value != "runtime/default"
	not startswith(value, "localhost/")
}
