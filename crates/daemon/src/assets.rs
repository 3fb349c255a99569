//! The files a package installs beside the binary, generated from the CLI definition itself so
//! they cannot drift from it: a man page per visible command (`lingerstackd.1`,
//! `lingerstackd-run.1`, ...) and the bash, zsh and fish completions.
//!
//! `lingerstackd generate-assets DIR` (hidden; `just package` runs it) writes `DIR/man/` and
//! `DIR/completions/`, which `[package.metadata.deb]` in Cargo.toml then installs.

use std::io;
use std::path::Path;

use clap_complete::Shell;

/// The shells whose completions are generated, with where Debian's packages of those shells
/// look for them (the package's `assets` list installs them there).
pub const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// Write the man pages to `dir/man` and the completions to `dir/completions` for `cmd`.
pub fn generate(mut cmd: clap::Command, dir: &Path) -> io::Result<()> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    clap_mangen::generate_to(cmd.clone(), &man)?;
    let name = cmd.get_name().to_string();
    for shell in SHELLS {
        clap_complete::generate_to(shell, &mut cmd, &name, &completions)?;
    }
    Ok(())
}
