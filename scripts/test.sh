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
#
# The packetdrill scripts (tests/packetdrill) run only when PACKETDRILL names a packetdrill
# binary: CI cannot fetch packetdrill, so there the shim's own tests stand in for them.
#
# nextest does not run doctests, so the documentation's examples (the Rust API's among them,
# on the in-memory link) run afterwards with `cargo test --doc`, skipped when a filter is given.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
status=0
cargo nextest run --workspace --no-fail-fast "$@" || status=$?
if [ "$#" -eq 0 ]; then
    # Crates without doctests print "0 passed" last; the total says what ran.
    log="$(mktemp)"
    cargo test --doc --workspace --all-features 2>&1 | tee "$log" || status=$?
    awk '/^test result:/ { p += $4; f += $6 } END { printf "doctests: %d passed, %d failed\n", p, f }' "$log"
    rm -f "$log"
fi
if [ -n "${PACKETDRILL:-}" ] && [ "$#" -eq 0 ]; then
    bash scripts/packetdrill.sh || status=$?
fi
exit "$status"
