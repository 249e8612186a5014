//! Generates the Xen bindings with bindgen against the headers installed on this machine
//! (Debian `libxen-dev`) and links the libraries through pkg-config.
//!
//! libxenlight and libxenctrl change soname with every Xen release, so the bindings are made
//! at build time from the headers that match the libraries being linked, never checked in.
//! Without the headers the crate builds as an empty shell (cfg `xen_sys_stub`) so that a plain
//! `cargo build --workspace` works on machines without Xen; nothing links against Xen then.

use std::env;
use std::path::PathBuf;

/// The pkg-config names of the libraries the bindings call into.
const LIBRARIES: &[&str] = &["xenlight", "xencontrol", "xentoollog"];

fn main() -> anyhow_free::Result {
    println!("cargo::rustc-check-cfg=cfg(xen_sys_stub)");
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-env-changed=XEN_SYS_STUB");
    let out = PathBuf::from(env::var("OUT_DIR")?).join("bindings.rs");

    let mut include_paths = Vec::new();
    let mut missing = None;
    if env::var_os("XEN_SYS_STUB").is_none() {
        for name in LIBRARIES {
            match pkg_config::Config::new().probe(name) {
                Ok(library) => include_paths.extend(library.include_paths),
                Err(err) => {
                    missing = Some(format!("{name}: {err}"));
                    break;
                }
            }
        }
    } else {
        missing = Some("XEN_SYS_STUB is set".into());
    }
    if let Some(why) = missing {
        println!(
            "cargo:warning=xen-sys: Xen development files not found ({}); building an empty \
             stub (install libxen-dev for the xen backend)",
            why.lines().next().unwrap_or_default()
        );
        println!("cargo:rustc-cfg=xen_sys_stub");
        std::fs::write(&out, "")?;
        return Ok(());
    }

    let mut builder = bindgen::Builder::default()
        .header("wrapper.h")
        .allowlist_function("libxl_.*")
        .allowlist_function("xc_interface_open")
        .allowlist_function("xc_interface_close")
        .allowlist_function("xc_domain_getinfolist")
        .allowlist_function("xc_physinfo")
        .allowlist_function("xc_version")
        .allowlist_function("xtl_.*")
        // The C library's `free` (libxl hands back malloc'd strings) and `stderr` (the logger's
        // stream).
        .allowlist_function("free")
        .allowlist_var("stderr")
        .allowlist_var("LIBXL_.*")
        .allowlist_var("XEN_DOMINF_.*")
        .allowlist_var("XENVER_.*")
        .allowlist_var("SHUTDOWN_.*")
        .allowlist_type("libxl_.*")
        .allowlist_type("xc_domaininfo_t")
        .allowlist_type("xc_physinfo_t")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .prepend_enum_name(false);
    for path in &include_paths {
        builder = builder.clang_arg(format!("-I{}", path.display()));
    }
    let bindings = builder
        .generate()
        .map_err(|err| format!("bindgen failed on the Xen headers: {err}"))?;
    bindings.write_to_file(&out)?;
    Ok(())
}

/// A tiny error alias so the build script needs no extra crate.
mod anyhow_free {
    /// Any error, boxed.
    pub type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;
}
