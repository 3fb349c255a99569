#!/usr/bin/env bash
# The whole workspace's test suite: the one command the README, `just test` and `.ci/run` use.
#
# cargo-nextest runs each test in its own process, which keeps the per-thread network
# namespaces of the TAP tests simple; without it, plain `cargo test`.
#
# TAP tests need root (CAP_NET_ADMIN, /dev/net/tun, iproute2) and skip loudly without it;
# export LINGERSTACK_REQUIRE_TAP=1 to make a skip a failure (CI does).
# Extra arguments go to the test runner (e.g. a filter).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if cargo nextest --version >/dev/null 2>&1; then
    exec cargo nextest run --workspace --no-fail-fast "$@"
else
    echo "cargo-nextest not found: falling back to cargo test" >&2
    exec cargo test --workspace --no-fail-fast "$@"
fi
