//! What the C ABI tests share: where the provider library is.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The directory holding liblingerstack_wsp.so, brought up to date first.
///
/// The library is this package's cdylib, and cargo builds a package's library for its
/// integration tests only when it is an rlib; so the test asks cargo for it, once per process
/// (a no-op when nothing changed), in the profile and target directory of the test itself.
pub fn lib_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        // <target>/<profile>/deps/<test binary>
        let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
        let target_dir = profile_dir.parent().unwrap();
        let profile = profile_dir.file_name().unwrap().to_str().unwrap();
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "--quiet", "-p", "lingerstack-wsp-capi", "--lib"])
            .arg("--target-dir")
            .arg(target_dir)
            .arg("--profile")
            .arg(if profile == "debug" { "dev" } else { profile });
        let status = cmd.status().expect("run cargo");
        assert!(status.success(), "building the C library failed: {cmd:?}");
        assert!(
            profile_dir.join("liblingerstack_wsp.so").exists(),
            "liblingerstack_wsp.so not found in {}",
            profile_dir.display()
        );
        profile_dir
    })
    .clone()
}
