#!/usr/bin/env bash
# Runs ConfigSync's main job end to end on a fresh machine: installs nats-server if absent,
# then `configsync demo` (an example config repository, a local nats-server, one kubesim
# cluster per environment, the six services, a change and two drifts, and the timeline of
# events). Extra arguments go to `configsync demo` (e.g. --keep-running, --dir DIR).
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-nats-server.sh >/dev/null
export PATH="$HOME/.local/bin:$PATH"
exec cargo run --quiet -p configsync -- demo "$@"
