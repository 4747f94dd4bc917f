# Resource requests and limits: without them the scheduler cannot place pods well and one
# pod can starve its node. Warnings.
package configsync.baseline.resources

import data.configsync.baseline.lib
import rego.v1

required := [["requests", "cpu"], ["requests", "memory"], ["limits", "memory"]]

warn contains {"id": "baseline.resources", "path": sprintf("%s.resources", [x.path]), "msg": sprintf("container %v has no %v", [x.name, concat(", ", missing)])} if {
	some x in lib.containers
	x.field != "ephemeralContainers" # ephemeral containers may not set resources
	missing := [sprintf("%s.%s", [kind, name]) |
		some [kind, name] in required
		not has_value(x.c, kind, name)
	]
	count(missing) > 0
}

has_value(c, kind, name) if object.get(c, ["resources", kind, name], null) != null
