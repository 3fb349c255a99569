#!/usr/bin/env bash
# Installs what lingerstack's demo and tests use on a fresh Debian machine with Rust:
# iproute2 (namespaces, TAP devices), tshark (reading captures), valgrind and a C/C++ compiler
# (the C ABI tests), ethtool (the offload forwarding test), cargo-nextest (the runner); for the
# packaging tests and `just package`, pkg-config, dpkg-dev and binutils (the .deb's dependencies,
# readelf), systemd (systemd-analyze verify of the unit; the service manager is not started),
# cargo-deb and cargo-c. The cargo tools are pinned and built once: cargo-c takes about 8 minutes
# to build on two cores (cargo-deb under one), so the check of the installed version comes first.
# Idempotent: what is installed already is left alone, so it costs nothing the second time.
# Without root it installs nothing and says what is missing (TAP tests then skip loudly).
set -euo pipefail

packages=(iproute2 tshark valgrind gcc g++ pkg-config dpkg-dev binutils systemd ethtool)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
    else
        echo "setup: missing ${missing[*]} (run as root to install them)" >&2
    fi
fi

if ! cargo nextest --version >/dev/null 2>&1; then
    cargo install --locked cargo-nextest
fi

# `cargo install --locked NAME --version V` unless `cargo SUBCOMMAND --version` already says V.
install_pinned() {
    local name=$1 version=$2 subcommand=$3
    if ! cargo "$subcommand" --version 2>/dev/null | grep -qF "$version"; then
        cargo install --locked "$name" --version "$version"
    fi
}
install_pinned cargo-deb 3.8.0 deb
install_pinned cargo-c 0.10.24+cargo-0.98.0 cinstall

# The declared minimum Rust (rust-version in Cargo.toml), for scripts/test.sh's MSRV check.
msrv="$(sed -n 's/^rust-version = "\(.*\)"/\1/p' "$(dirname "${BASH_SOURCE[0]}")/../Cargo.toml")"
if command -v rustup >/dev/null && ! rustup run "$msrv" rustc --version >/dev/null 2>&1; then
    rustup toolchain install "$msrv" --profile minimal
fi
