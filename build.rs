//! Link settings that depend on the build host.
//!
//! Packed relative relocations (DT_RELR, `-z pack-relative-relocs`): the
//! dynamic loader reads every relocation of the binary when it starts. In
//! the ordinary format they fill about 1 MiB of it, and all of that stays
//! resident for as long as `troll serve` runs; packed, they take a few
//! KiB. The loader must know the format (glibc 2.36 and later), so the
//! flag is only passed when building natively against such a glibc.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // A glibc upgrade or downgrade runs ldconfig, which rewrites the cache.
    println!("cargo:rerun-if-changed=/etc/ld.so.cache");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let target = std::env::var("TARGET").unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    // A linker of the user's choice may be no cc driver (no -Wl,) or link
    // against another glibc: leave it alone.
    let own_linker = std::env::var_os("RUSTC_LINKER").is_some();
    if target == host && !own_linker && target.ends_with("-linux-gnu") && glibc_at_least(2, 36) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether the host's glibc (`getconf GNU_LIBC_VERSION`: "glibc 2.36") is
/// at least `major.minor`; false when that cannot be told.
fn glibc_at_least(major: u32, minor: u32) -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(version) = text.trim().strip_prefix("glibc ") else {
        return false;
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}
