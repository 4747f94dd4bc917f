#!/usr/bin/env bash
# Runs ConfigSync's whole test suite on a fresh machine: installs what the tests need
# (nats-server, kubectl, and the Python modules that tools/check-report-formats.py uses),
# then runs every test of the workspace. Usage: tools/test.sh [ARGS] (extra arguments go to
# the test runner, e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-nats-server.sh
tools/install-kubectl.sh
# The report-format tests validate SARIF and JUnit output with jsonschema and lxml.
if ! python3 -c 'import jsonschema, lxml' >/dev/null 2>&1; then
  python3 -m pip install --quiet 'jsonschema>=4' lxml
fi
export PATH="$HOME/.local/bin:$PATH"

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  echo "cargo-nextest not found; using cargo test"
  cargo test --workspace --no-fail-fast "$@"
fi
