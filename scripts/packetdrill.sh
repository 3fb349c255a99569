#!/usr/bin/env bash
# Runs packetdrill scripts against lingerstack through its shared-object shim
# (crates/packetdrill, liblingerstack_packetdrill.so), on the shim's virtual clock.
#
#   PACKETDRILL=/path/to/packetdrill scripts/packetdrill.sh [SCRIPT.pkt|DIR ...]
#
# Without arguments it runs the project's own scripts, tests/packetdrill/*.pkt. A directory
# argument runs every *.pkt below it (upstream test trees, for instance).
#
# Each script runs in a fresh network namespace that this runner creates and deletes. The shim
# never touches a network device, but packetdrill runs a script's shell commands (sysctl, ip,
# tc) on the host; in the namespace they touch only the namespace, and the idle tun0 there
# gives commands that name tun0 something to act on. Needs root (namespaces, SCHED_RR).
#
# Scripts run from their own directory, as packetdrill's run_all.py does, so upstream scripts
# find `../common/defaults.sh`. Addresses are fixed and handed to both packetdrill and the shim.
#
# Environment:
#   PACKETDRILL          the packetdrill binary (required)
#   PACKETDRILL_ARGS     more packetdrill options (e.g. -v)
#   PACKETDRILL_IPV6=1   run over IPv6
#   PACKETDRILL_MTU      the shim's MTU (default 1500, 1520 for IPv6); upstream scripts inject
#                        segments larger than 1500 bytes, which Linux's tun device accepts
#   PACKETDRILL_TIMEOUT  real seconds per script (default 60)
#   PACKETDRILL_VERBOSE=1  every script's output, not only a failing one's
#   PACKETDRILL_QUIET=1    one line per script even when it fails (long upstream runs)
# Prints one line per script, then "packetdrill: P of N scripts passed"; exits 1 if any
# failed, 2 if packetdrill or root is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$PWD"

# run_all.py's addresses; IPv6 with a 1520-byte MTU, as run_all.py does, so the MSS is 1460
# under both families and one script fits both.
if [[ "${PACKETDRILL_IPV6:-}" == 1 ]]; then
    family=(--ip_version=ipv6 --local_ip=fd3d:0a0b:17d6::1 --remote_ip=fd3d:fa7b:d17d::1
        --gateway_ip=fd3d:0a0b:17d6:8888::1 -D CMSG_LEVEL_IP=SOL_IPV6
        -D CMSG_TYPE_RECVERR=IPV6_RECVERR)
    so_flags="local=fd3d:a0b:17d6::1,remote=fd3d:fa7b:d17d::1,mtu=${PACKETDRILL_MTU:-1520}"
else
    family=(--ip_version=ipv4 --local_ip=192.168.0.1 --remote_ip=192.0.2.1
        --gateway_ip=192.168.0.1 --netmask_ip=255.255.0.0 -D CMSG_LEVEL_IP=SOL_IP
        -D CMSG_TYPE_RECVERR=IP_RECVERR)
    so_flags="local=192.168.0.1,remote=192.0.2.1${PACKETDRILL_MTU:+,mtu=$PACKETDRILL_MTU}"
fi

how_to_build() {
    cat >&2 <<'EOF'
packetdrill: set PACKETDRILL to a packetdrill binary. It is in no package registry; build it:

    sudo apt-get install -y git gcc make bison flex
    git clone https://github.com/google/packetdrill /tmp/packetdrill
    cd /tmp/packetdrill/gtests/net/packetdrill && ./configure && make
    PACKETDRILL=/tmp/packetdrill/gtests/net/packetdrill/packetdrill just packetdrill

(tested with google/packetdrill at commit 2c4001c; see docs/packetdrill.md)
EOF
}

if [[ -z "${PACKETDRILL:-}" || ! -x "${PACKETDRILL}" ]]; then
    how_to_build
    exit 2
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "packetdrill: needs root (network namespaces, SCHED_RR)" >&2
    exit 2
fi
packetdrill="$(realpath "$PACKETDRILL")"

# Build the shim; its path must be absolute (packetdrill dlopens it from the script's dir).
cargo build --quiet --manifest-path crates/packetdrill/Cargo.toml
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
so="$(realpath "$target_dir/debug/liblingerstack_packetdrill.so")"

# The scripts to run: arguments (files or directories) or the project's set.
scripts=()
collect() {
    if [[ -d "$1" ]]; then
        while IFS= read -r f; do scripts+=("$(realpath "$f")"); done \
            < <(find "$1" -name '*.pkt' | LC_ALL=C sort)
    else
        scripts+=("$(realpath "$1")")
    fi
}
if (($#)); then
    for a in "$@"; do collect "$a"; done
else
    collect tests/packetdrill
fi

ns=""
cleanup() {
    if [[ -n "$ns" ]]; then ip netns del "$ns" 2>/dev/null || true; fi
    ns=""
}
trap cleanup EXIT INT TERM

# run_one SCRIPT LOG: one script in its own namespace; packetdrill's exit status.
run_one() {
    ns="lspd-$$-$RANDOM"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$ns" tuntap add dev tun0 mode tun
    local rc=0
    # shellcheck disable=SC2086 # PACKETDRILL_ARGS is a list of options
    (cd "$(dirname "$1")" && ip netns exec "$ns" timeout -k 5 "${PACKETDRILL_TIMEOUT:-60}" \
        "$packetdrill" --so_filename="$so" --so_flags="$so_flags" "${family[@]}" \
        -D TFO_COOKIE=3021b9d889017eeb -D CODE=host_unreachable \
        ${PACKETDRILL_ARGS:-} "$(basename "$1")") >"$2" 2>&1 || rc=$?
    cleanup
    return "$rc"
}

passed=0
failed=()
log="$(mktemp)"
start=$SECONDS
for s in "${scripts[@]}"; do
    name="${s#"$repo"/}"
    if run_one "$s" "$log"; then
        passed=$((passed + 1))
        echo "ok    $name"
        [[ "${PACKETDRILL_VERBOSE:-}" == 1 ]] && sed 's/^/      /' "$log"
    else
        rc=$?
        failed+=("$name")
        # The first line packetdrill prints about the script says why it failed.
        why="$(grep -m1 -E 'error|fail|timed out|Assertion|die' "$log" || tail -n1 "$log")"
        [[ $rc -eq 124 || $rc -eq 137 ]] && why="timed out after ${PACKETDRILL_TIMEOUT:-60} s (real time)"
        echo "FAIL  $name: ${why}"
        [[ "${PACKETDRILL_QUIET:-}" == 1 ]] || sed 's/^/      /' "$log"
    fi
done
rm -f "$log"
echo "packetdrill: $passed of ${#scripts[@]} scripts passed in $((SECONDS - start)) s (real time)"
((${#failed[@]} == 0))
