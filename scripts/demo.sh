#!/usr/bin/env bash
# The main job: lingerstackd brought up on a TAP in a private network namespace, serving echo
# to the kernel of that namespace (as root), or two engines on the in-memory link otherwise.
# It installs what it needs first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
exec cargo run --release -p lingerstack-daemon --bin lingerstackd -- demo "$@"
