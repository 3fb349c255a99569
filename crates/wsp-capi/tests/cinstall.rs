//! The C library installed as a C library: `cargo cinstall` (cargo-c) into a temporary
//! destination, then `examples/c/echo.c` built with nothing but what `pkg-config` says, against
//! the shared library and against the static one, and run.
//!
//! It proves the install layout a packager or `make install` user gets: the versioned shared
//! object with its soname (`liblingerstack_wsp.so.0`) and the two symlinks, the static
//! archive, `lingerstack_wsp.pc`, and the header at `include/lingerstack/ws2spi.h` (the example
//! includes `<lingerstack/ws2spi.h>`, so a wrong include directory fails the build). The
//! example runs on the in-memory network and prints the echoed text, which is checked.
//!
//! cargo-c builds in release mode into `target/<triple>/release`, apart from the suite's debug
//! build; the second run finds it built.

use std::path::{Path, PathBuf};
use std::process::Command;

use lingerstack_testkit::{require_tool, run_ok};

/// What the example prints once its message came back through the stack.
const ECHOED: &str = "\"hello, lingerstack\"";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `pkg-config ARGS lingerstack_wsp` against the install in `dest` (prefix /usr), split into
/// words as a shell would.
fn pkg_config(dest: &Path, args: &[&str]) -> Vec<String> {
    let out = run_ok(
        Command::new("pkg-config")
            .args(args)
            .arg("lingerstack_wsp")
            .env("PKG_CONFIG_PATH", dest.join("usr/lib/pkgconfig"))
            .env("PKG_CONFIG_SYSROOT_DIR", dest)
            .env_remove("PKG_CONFIG_LIBDIR"),
    );
    out.split_whitespace().map(str::to_string).collect()
}

/// The shared objects a binary needs, from its dynamic section.
fn needed(binary: &Path) -> String {
    run_ok(Command::new("readelf").arg("-d").arg(binary))
}

/// Build `examples/c/echo.c` into `out` with `flags` (what pkg-config printed).
fn build_echo(out: &Path, flags: &[String]) {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    run_ok(
        Command::new(cc)
            .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"])
            .arg(workspace().join("examples/c/echo.c"))
            .args(flags)
            .arg("-o")
            .arg(out),
    );
}

#[test]
fn cinstall_layout_and_pkg_config_build_shared_and_static() {
    let test = "cinstall_layout_and_pkg_config_build_shared_and_static";
    if !require_tool(test, "cargo-cinstall", "--version")
        || !require_tool(test, "pkg-config", "--version")
    {
        return;
    }
    let tmp = std::env::temp_dir().join(format!("lsd-cinstall-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let dest = tmp.join("dest");
    run_ok(
        Command::new("cargo")
            .current_dir(workspace())
            .args(["cinstall", "-p", "lingerstack-wsp-capi"])
            .args(["--prefix=/usr", "--libdir=/usr/lib"])
            .arg(format!("--destdir={}", dest.display())),
    );

    // The layout: real file, soname link, development link, archive, .pc, header.
    let lib = dest.join("usr/lib");
    let version = env!("CARGO_PKG_VERSION");
    let real = format!("liblingerstack_wsp.so.{version}");
    assert!(lib.join(&real).is_file(), "{real} missing");
    for link in ["liblingerstack_wsp.so.0", "liblingerstack_wsp.so"] {
        let to = std::fs::read_link(lib.join(link)).unwrap_or_else(|e| panic!("{link}: {e}"));
        assert_eq!(to, Path::new(&real), "{link} points elsewhere");
    }
    assert!(lib.join("liblingerstack_wsp.a").is_file());
    assert!(dest.join("usr/include/lingerstack/ws2spi.h").is_file());
    let soname = needed(&lib.join(&real));
    assert!(
        soname.contains("Library soname: [liblingerstack_wsp.so.0]"),
        "{soname}"
    );
    let pc = std::fs::read_to_string(lib.join("pkgconfig/lingerstack_wsp.pc")).unwrap();
    assert!(pc.contains(&format!("Version: {version}")), "{pc}");

    // Shared: the program records the soname, and runs with the library found by the loader.
    let shared = tmp.join("echo-shared");
    build_echo(&shared, &pkg_config(&dest, &["--cflags", "--libs"]));
    let deps = needed(&shared);
    assert!(
        deps.contains("Shared library: [liblingerstack_wsp.so.0]"),
        "{deps}"
    );
    let out = run_ok(Command::new(&shared).env("LD_LIBRARY_PATH", &lib));
    assert!(out.contains(ECHOED), "echo-shared printed:\n{out}");

    // Static: the archive and the .pc's private libraries are enough; no shared lingerstack.
    let mut flags = pkg_config(&dest, &["--cflags", "--libs", "--static"]);
    for f in &mut flags {
        if f == "-llingerstack_wsp" {
            *f = "-l:liblingerstack_wsp.a".into();
        }
    }
    let fixed = tmp.join("echo-static");
    build_echo(&fixed, &flags);
    let deps = needed(&fixed);
    assert!(!deps.contains("lingerstack"), "{deps}");
    let out = run_ok(&mut Command::new(&fixed));
    assert!(out.contains(ECHOED), "echo-static printed:\n{out}");
    let _ = std::fs::remove_dir_all(&tmp);
}
