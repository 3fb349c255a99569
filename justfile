# lingerstack's everyday recipes. `just --list` shows them.

# Where capture files (pcap) go: <target dir>/captures.
target_dir := env_var_or_default("CARGO_TARGET_DIR", justfile_directory() / "target")

# The whole test suite (TAP tests need root; they skip loudly without it).
test *args:
    bash scripts/test.sh {{args}}

# lingerstack's packetdrill scripts (tests/packetdrill, or the given scripts or directories)
# through the shim on virtual time, each in a fresh network namespace (root). Needs
# PACKETDRILL=/path/to/packetdrill; without it, prints how to build packetdrill and fails.
packetdrill *scripts:
    bash scripts/packetdrill.sh {{scripts}}

# The echo demo: the kernel of a private namespace talks to lingerstack over a TAP (as root),
# or two engines over the in-memory link otherwise.
demo:
    bash scripts/demo.sh

# The soak (as root): 10,000 connections from the provider to the kernel of a private
# namespace over a TAP, closed gracefully, abortively, with a blocking linger and with a
# non-blocking linger in turn, under 2 % loss and reordering each way; then no descriptor, no
# engine id, no smoltcp socket left and memory within 32 MiB of the warm-up. The suite runs
# 600 connections; LINGERSTACK_SOAK_CONNECTIONS sets the count, LINGERSTACK_SOAK_SECS the time
# budget (default 60 s + 40 ms per connection). `just soak 50000` for more.
soak connections="10000":
    LINGERSTACK_SOAK_CONNECTIONS={{connections}} cargo nextest run -p lingerstack-wsp --test tap_soak --no-capture

# Formatting check and clippy with warnings as errors.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Remove the pcap files that tests and the demo wrote.
capture-clean:
    rm -rf "{{target_dir}}/captures"

# The C example: an echo server and client through the provider's C ABI (liblingerstack_wsp.so
# and include/lingerstack/ws2spi.h only), on the in-memory network; set LINGERSTACK_IFACE etc.
# to run it on a TAP.
c-example:
    cargo build -p lingerstack-wsp-capi
    mkdir -p "{{target_dir}}/c-example"
    cc -std=c99 -Wall -Wextra -Werror -pedantic -I include examples/c/echo.c \
        -L "{{target_dir}}/debug" -llingerstack_wsp -Wl,-rpath,"{{target_dir}}/debug" \
        -o "{{target_dir}}/c-example/echo"
    "{{target_dir}}/c-example/echo"

# Benchmarks (root: namespaces, TAP, veth): lingerstack against bare smoltcp and the kernel,
# all in one run. `just bench --full`, `just bench --only throughput --mtu 65520`.
bench *args="--quick":
    cargo run --release -p lingerstack-bench -- {{args}}

# lingerstackd holding 10,000 idle echo connections from the kernel of a private namespace
# (root): its thread count and memory per connection (the figures of docs/performance.md).
daemon-scale conns="10000":
    LINGERSTACK_REQUIRE_TAP=1 LINGERSTACK_DAEMON_CONNS={{conns}} cargo nextest run -p lingerstack-daemon --test scale --no-capture holds_idle_echo_connections_on_a_few_threads

# The release artifacts, from a clean clone (needs cargo-deb and cargo-c: scripts/setup.sh):
# the Debian package of lingerstackd and the C library bundle (the /usr tree `cargo cinstall`
# makes: liblingerstack_wsp.so.0 and .a, lingerstack_wsp.pc, lingerstack/ws2spi.h), both in
# target/dist/. The man pages and completions are generated from the CLI first.
package:
    cargo build --release --locked -p lingerstack-daemon
    "{{target_dir}}/release/lingerstackd" generate-assets "{{target_dir}}/release/assets"
    cargo deb -p lingerstack-daemon --no-build -o "{{target_dir}}/dist/"
    rm -rf "{{target_dir}}/dist/capi"
    cargo cinstall --locked -p lingerstack-wsp-capi --prefix=/usr --libdir=/usr/lib --destdir="{{target_dir}}/dist/capi"
    find "{{target_dir}}/dist/capi" -type f -name 'liblingerstack_wsp.*' -exec strip --strip-debug {} +
    version="$(cargo pkgid -p lingerstack-wsp-capi | sed 's/.*[#@]//')" && \
        tar -C "{{target_dir}}/dist/capi" -czf "{{target_dir}}/dist/liblingerstack_wsp-$version-$(uname -m)-linux-gnu.tar.gz" usr
    @ls -l "{{target_dir}}/dist"
