# Image references must be reproducible: a tag other than "latest", or a digest. Errors.
package configsync.baseline.images

import data.configsync.baseline.lib
import rego.v1

deny contains {"id": "baseline.image-tag", "path": sprintf("%s.image", [x.path]), "msg": sprintf("container %v uses image %v without a pinned tag or digest", [x.name, x.c.image])} if {
	some x in lib.containers
	is_string(x.c.image)
	not pinned(x.c.image)
}

pinned(image) if contains(image, "@")

pinned(image) if {
	not contains(image, "@")
	parts := split(image, "/")
	last := parts[count(parts) - 1]
	contains(last, ":")
	tag := split(last, ":")[1]
	tag != ""
	tag != "latest"
}
