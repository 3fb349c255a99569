//! The library exports `packetdrill_interface_init` and nothing else. packetdrill loads it with
//! RTLD_DEEPBIND, under which a libc name the library exported (close, read, usleep...) would
//! capture the library's own calls to libc.

mod common;

use std::ffi::CString;
use std::process::Command;

/// Through the loader: every libc name the shim's calls use resolves, from the library's
/// handle, to the same function as from the program's global scope (libc's).
#[test]
fn libc_names_resolve_to_libc_not_to_the_shim() {
    let (handle, _) = common::loaded();
    for name in [
        "close",
        "read",
        "write",
        "poll",
        "usleep",
        "gettimeofday",
        "socket",
        "bind",
        "accept",
        "connect",
        "fcntl",
        "ioctl",
        "free",
        "malloc",
        "pthread_mutex_lock",
        "memfd_create",
    ] {
        let c = CString::new(name).unwrap();
        // SAFETY: a valid handle (kept loaded) and symbol names.
        let (ours, global) = unsafe {
            (
                libc::dlsym(handle as *mut libc::c_void, c.as_ptr()),
                libc::dlsym(libc::RTLD_DEFAULT, c.as_ptr()),
            )
        };
        assert_eq!(ours, global, "{name} resolves to the shim's own definition");
    }
}

/// The dynamic symbol table itself (nm ships with binutils, which gcc brings).
#[test]
fn only_the_init_function_is_exported() {
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(common::lib_path())
        .output()
        .expect("nm (binutils) is installed");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    assert_eq!(names, ["packetdrill_interface_init"], "{text}");
}
