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
# on the in-memory link) run afterwards with `cargo test --doc`, skipped when a filter is given,
# as is the check that the declared minimum Rust (rust-version) still compiles the workspace.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The wire rows rerun with offloads off (a nextest filterset).
offload_off_rows='(binary(tap_close) | binary(tap_adverse)) & test(/^(c0[3-9]|c1[0-5]|c24|p0[1-3])_/)
    | (binary(c_abi) & test(/over_tap/)) | binary(tap_offload)
    | (binary(tap_engine) & test(kernel_to_stack_one_mib_each_way))'

bash scripts/setup.sh
status=0
cargo nextest run --workspace --no-fail-fast "$@" || status=$?
if [ "$#" -eq 0 ]; then
    # The suite above runs with the TAP's offloads on (the default). The close contract's wire
    # rows (C03-C15, C24, P01-P03, from Rust and from C) and the offload tests run once more on
    # plain frames, so both paths are proved.
    LINGERSTACK_TEST_OFFLOAD=off cargo nextest run --workspace --no-fail-fast -E "$offload_off_rows" \
        || status=$?
    # Crates without doctests print "0 passed" last; the total says what ran.
    log="$(mktemp)"
    cargo test --doc --workspace --all-features 2>&1 | tee "$log" || status=$?
    awk '/^test result:/ { p += $4; f += $6 } END { printf "doctests: %d passed, %d failed\n", p, f }' "$log"
    rm -f "$log"
    # The declared minimum Rust still compiles everything (rust-version in Cargo.toml).
    # Without rustup (a distribution's cargo) it is skipped loudly, or fails under CI's
    # LINGERSTACK_REQUIRE_TAP=1, where scripts/setup.sh has installed the toolchain.
    msrv="$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)"
    if cargo "+$msrv" --version >/dev/null 2>&1; then
        echo "MSRV check: cargo +$msrv check"
        cargo "+$msrv" check --workspace --all-targets --all-features --locked || status=$?
    elif [ "${LINGERSTACK_REQUIRE_TAP:-}" = 1 ]; then
        echo "MSRV check: Rust $msrv is not installed (rustup toolchain install $msrv)" >&2
        status=1
    else
        echo "*** SKIP MSRV check: Rust $msrv is not installed ***" >&2
    fi
fi
if [ -n "${PACKETDRILL:-}" ] && [ "$#" -eq 0 ]; then
    bash scripts/packetdrill.sh || status=$?
fi
exit "$status"
