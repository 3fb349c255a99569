//! Compiles the two C-variadic entry points of the table (fcntl, ioctl), which stable Rust
//! cannot define. Their symbols are hidden: the library exports `packetdrill_interface_init`
//! only.

fn main() {
    println!("cargo:rerun-if-changed=csrc/variadic.c");
    cc::Build::new()
        .file("csrc/variadic.c")
        .flag_if_supported("-fvisibility=hidden")
        .warnings(true)
        .compile("lingerstack_packetdrill_variadic");
}
