# Workloads carry a name label (app.kubernetes.io/name, or the older app) so dashboards,
# selectors and cost reports can group them. Warnings.
package configsync.baseline.labels

import data.configsync.baseline.lib
import rego.v1

warn contains {"id": "baseline.labels", "path": ".metadata.labels", "msg": sprintf("%v has neither label app.kubernetes.io/name nor app", [input.kind])} if {
	lib.workload_kinds[input.kind]
	labels := object.get(input, ["metadata", "labels"], {})
	not labels["app.kubernetes.io/name"]
	not labels.app
}
