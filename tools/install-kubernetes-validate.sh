#!/usr/bin/env bash
# Installs kubernetes-validate (PyPI), the baseline the validation benchmark compares
# `configsync validate` with, into its own virtual environment under
# ${CONFIGSYNC_TOOLS:-$HOME/.cache/configsync-tools}/kubernetes-validate, and prints the path
# of its `kubernetes-validate` executable on standard output (progress goes to standard
# error). Idempotent: an existing install of the pinned version is reused.
# Usage: kv="$(tools/install-kubernetes-validate.sh)"; "$kv" --strict FILE...
set -euo pipefail

VERSION="${KUBERNETES_VALIDATE_VERSION:-1.37.0}"
venv="${CONFIGSYNC_TOOLS:-$HOME/.cache/configsync-tools}/kubernetes-validate"
exe="$venv/bin/kubernetes-validate"

installed_version() {
  "$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("kubernetes-validate"))' \
    2>/dev/null || true
}

if [[ -x "$exe" && "$(installed_version)" == "$VERSION" ]]; then
  echo "$exe"
  exit 0
fi

echo "installing kubernetes-validate $VERSION into $venv" >&2
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
python3 -m venv "$venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  "kubernetes-validate==$VERSION" >&2
if [[ "$(installed_version)" != "$VERSION" || ! -x "$exe" ]]; then
  echo "kubernetes-validate $VERSION did not install into $venv" >&2
  exit 1
fi
echo "$exe"
