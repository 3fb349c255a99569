//! Release hygiene of the workspace: every crate meant for users packages (`cargo package`,
//! which fails on a path dependency without a version or a missing manifest field) and carries
//! both licence texts; every other crate says `publish = false`; no manifest names a made-up
//! URL; every crate declares the minimum Rust.
//!
//! `--offline`: everything needed is in the local cache after the suite's build; `--no-verify`:
//! the suite itself is the build of these sources (`cargo publish --dry-run --workspace`
//! verifies each package on its own, see docs); `--allow-dirty`: the manifests and file lists
//! are under test here, not whether the work tree is committed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The crates meant for users, by directory (the root is `lingerstack`).
const PUBLISHED: [(&str, &str); 7] = [
    ("lingerstack", "."),
    ("lingerstack-core", "crates/core"),
    ("lingerstack-stack", "crates/stack"),
    ("lingerstack-tap", "crates/tap"),
    ("lingerstack-wsp", "crates/wsp"),
    ("lingerstack-wsp-capi", "crates/wsp-capi"),
    ("lingerstack-daemon", "crates/daemon"),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn manifest(dir: &str) -> String {
    let path = root().join(dir).join("Cargo.toml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The file names inside a packaged `.crate` (a gzipped tar).
fn files_of(krate: &Path) -> String {
    let out = Command::new("tar").arg("tzf").arg(krate).output().unwrap();
    assert!(out.status.success(), "tar tzf {}", krate.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn published_crates_package_with_licences_and_the_rest_are_unpublished() {
    let out_dir = std::env::temp_dir().join(format!("lsd-release-{}", std::process::id()));
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root())
        .args([
            "package",
            "--no-verify",
            "--locked",
            "--offline",
            "--allow-dirty",
        ])
        .arg("--target-dir")
        .arg(&out_dir);
    for (name, _) in PUBLISHED {
        cmd.args(["-p", name]);
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cargo package failed:\n{err}");

    let version = env!("CARGO_PKG_VERSION");
    for (name, _) in PUBLISHED {
        let krate = out_dir.join(format!("package/{name}-{version}.crate"));
        let files = files_of(&krate);
        for licence in ["LICENSE-MIT", "LICENSE-APACHE"] {
            let entry = format!("{name}-{version}/{licence}");
            assert!(files.lines().any(|l| l == entry), "{name} lacks {licence}");
        }
    }
    let _ = std::fs::remove_dir_all(&out_dir);

    // Every other crate of the workspace opts out explicitly.
    for entry in std::fs::read_dir(root().join("crates")).unwrap() {
        let dir = format!("crates/{}", entry.unwrap().file_name().to_string_lossy());
        if PUBLISHED.iter().any(|(_, d)| *d == dir) {
            continue;
        }
        let m = manifest(&dir);
        assert!(
            m.lines().any(|l| l.trim() == "publish = false"),
            "{dir}: neither in the published list nor `publish = false`"
        );
    }
}

#[test]
fn manifests_declare_msrv_and_no_placeholder_url() {
    let workspace = manifest(".");
    assert!(
        workspace.contains("rust-version = \""),
        "no workspace rust-version"
    );
    for (_, dir) in PUBLISHED {
        let m = manifest(dir);
        assert!(!m.contains(".invalid"), "{dir}: a placeholder URL");
        assert!(
            m.contains("rust-version.workspace = true") || m.contains("rust-version = \""),
            "{dir}: no rust-version"
        );
    }
}
