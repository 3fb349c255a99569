#!/usr/bin/env bash
# Installs what lingerstack's demo and tests use on a fresh Debian machine with Rust:
# iproute2 (namespaces, TAP devices), tshark (reading captures), valgrind and a C/C++ compiler
# (the C ABI tests), ethtool (the offload forwarding test), cargo-nextest (the runner).
# Idempotent: what is installed already is left alone, so it costs nothing the second time.
# Without root it installs nothing and says what is missing (TAP tests then skip loudly).
set -euo pipefail

packages=(iproute2 tshark valgrind gcc g++ ethtool)
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
