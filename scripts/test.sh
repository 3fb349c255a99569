#!/usr/bin/env bash
# The whole test suite: the one command the README, `just test` and `.ci/run` use.
# It installs what it needs first (scripts/setup.sh), then runs every test of the workspace.
#
# cargo-nextest runs each test in its own process, which keeps the per-thread network
# namespaces of the TAP tests simple.
#
# TAP tests need root (CAP_NET_ADMIN, /dev/net/tun, iproute2) and skip loudly without it;
# LINGERSTACK_REQUIRE_TAP=1 makes a skip a failure (CI sets it).
# Extra arguments go to the test runner (e.g. a filter).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
exec cargo nextest run --workspace --no-fail-fast "$@"
