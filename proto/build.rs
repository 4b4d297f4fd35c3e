//! Generates the Rust view of the channel UAPI header with bindgen.
//!
//! The header is the single source of truth for the kernel <-> daemon
//! protocol; bindgen's layout tests (size, alignment and offset of every
//! field) run with `cargo test` and prove that the structs used here match it.

use std::env;
use std::path::PathBuf;

fn main() {
    let manifest =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let uapi = manifest.join("../kernel/include/uapi");
    let header = uapi.join("linux/daedalus_v4l2.h");
    println!("cargo:rerun-if-changed={}", header.display());

    let bindings = bindgen::Builder::default()
        .header(header.to_string_lossy())
        // Our own uapi dir first, then the system's linux/types.h.
        .clang_arg(format!("-I{}", uapi.display()))
        .allowlist_type("daedalus_.*")
        .allowlist_var("DAEDALUS_.*")
        .derive_default(true)
        .derive_debug(true)
        .layout_tests(true)
        .use_core()
        .generate()
        .expect("bindgen failed on the daedalus_v4l2.h UAPI header");

    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("uapi.rs");
    bindings
        .write_to_file(&out)
        .expect("cannot write the generated bindings");
}
