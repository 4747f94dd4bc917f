#!/usr/bin/env bash
# Runs ConfigSync's whole test suite on a fresh machine: installs what the tests need
# (nats-server, kubectl, a `helm` over Helm's Go SDK, gpg and ssh-keygen for people's signed
# actions, OpenSSH's server for Git over SSH, and the Python modules that
# tools/check-report-formats.py uses), then runs every test of the workspace. Usage:
# tools/test.sh [ARGS] (extra arguments go to the test runner, e.g. a test name filter).
#
# A test that needs one of these (or ../shared/corpus) is reported IGNORED when it is missing,
# and FAILS naming it under CI=true (services/prereq): no test passes by doing nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-nats-server.sh
tools/install-kubectl.sh
tools/install-helm-shim.sh
# People's keys in the approval tests: OpenPGP (gnupg) and SSH (openssh-client), from Debian.
missing=()
command -v gpg >/dev/null 2>&1 || missing+=(gnupg)
command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
# Git over SSH: the git-watcher's tests run their own sshd as the current user on a free port.
{ command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ]; } || missing+=(openssh-server)
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" </dev/null \
    || { "${sudo_cmd[@]}" apt-get update -q </dev/null && "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" </dev/null; }
fi
# The report-format tests validate SARIF and JUnit output with jsonschema and lxml.
if ! python3 -c 'import jsonschema, lxml' >/dev/null 2>&1; then
  python3 -m pip install --quiet 'jsonschema>=4' lxml
fi
# Prepended only when absent: the test crates' build scripts rerun (and their crates rebuild)
# whenever PATH changes, so an unchanged PATH keeps a second run incremental.
case ":$PATH:" in
  *":$HOME/.local/bin:"*) ;;
  *) export PATH="$HOME/.local/bin:$PATH" ;;
esac

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  echo "cargo-nextest not found; using cargo test"
  cargo test --workspace --no-fail-fast "$@"
fi
