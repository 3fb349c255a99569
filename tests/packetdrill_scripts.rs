//! Keeps the packetdrill scripts in `tests/packetdrill/` from rotting where packetdrill itself
//! is absent (CI cannot fetch it; `scripts/packetdrill.sh` runs them when it is there).
//!
//! Each script must say in its opening comment which close-contract row (or which other
//! behaviour) it pins, with a `// Row: ` line; every line that is not a comment or a
//! packetdrill option (`--name=value`, before the events) must start with a packetdrill time; and the rows the project promises to state as scripts must each
//! have one. This reads the scripts as text: it proves their shape, not their truth.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Rows that must each be pinned by at least one script.
const REQUIRED_ROWS: &[&str] = &[
    "C03", "C04", "C05", "C06", "C11", "C12", "C14", "C15", "C24", "P01", "P02", "P03",
];

/// Labels a script may give instead of a row ID.
const OTHER_LABELS: &[&str] = &["life", "robustness"];

fn scripts() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/packetdrill");
    let mut found: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "pkt"))
        .collect();
    found.sort();
    found
}

/// The label of the `// Row: ` line in the script's opening comment block.
fn row_label(text: &str) -> Option<&str> {
    text.lines()
        .take_while(|l| l.starts_with("//"))
        .find_map(|l| l.strip_prefix("// Row: "))
        .and_then(|rest| rest.split([' ', ',', '(']).next())
}

/// A row ID as the close contract writes them: C, P or O and two digits.
fn is_row_id(label: &str) -> bool {
    let mut chars = label.chars();
    matches!(chars.next(), Some('C' | 'P' | 'O'))
        && label.len() == 3
        && chars.all(|c| c.is_ascii_digit())
}

/// Whether a line begins with a packetdrill time: `0`, `+.1`, `0.25`, `+0~+.01`, `+.1...2.1`.
fn starts_with_time(line: &str) -> bool {
    let token = line.split_whitespace().next().unwrap_or("");
    !token.is_empty()
        && token
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | '.' | '~'))
        && token.chars().any(|c| c.is_ascii_digit())
}

#[test]
fn every_script_names_its_row_and_is_made_of_timed_events() {
    let scripts = scripts();
    assert!(!scripts.is_empty(), "no scripts in tests/packetdrill");
    for path in &scripts {
        let name = path.display();
        let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let label = row_label(&text)
            .unwrap_or_else(|| panic!("{name}: no `// Row: ` line in its opening comment"));
        assert!(
            is_row_id(label) || OTHER_LABELS.contains(&label),
            "{name}: `{label}` is neither a row ID nor one of {OTHER_LABELS:?}"
        );
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with("//") || line.starts_with("--") {
                continue;
            }
            assert!(
                starts_with_time(line),
                "{name}:{}: not a timed event: {line}",
                n + 1
            );
        }
    }
}

#[test]
fn the_promised_rows_each_have_a_script() {
    let pinned: BTreeSet<String> = scripts()
        .iter()
        .filter_map(|p| fs::read_to_string(p).ok())
        .filter_map(|text| row_label(&text).map(str::to_owned))
        .collect();
    let missing: Vec<&&str> = REQUIRED_ROWS
        .iter()
        .filter(|row| !pinned.contains(**row))
        .collect();
    assert!(missing.is_empty(), "rows without a script: {missing:?}");
}

#[test]
fn the_checks_reject_what_they_should() {
    assert_eq!(row_label("// Row: C06 (linger)\n0 x"), Some("C06"));
    assert_eq!(row_label("0 x\n// Row: C06"), None);
    assert!(is_row_id("P02") && !is_row_id("C6") && !is_row_id("X01"));
    assert!(starts_with_time("+.1...2.1 close(4) = 0"));
    assert!(starts_with_time("+0~+.01 > . 1:1(0) ack 2"));
    assert!(!starts_with_time("close(4) = 0"));
    assert!(!starts_with_time("+ > ."));
}
