//! Builds the guest fixture components before the tests and the bench are compiled.
//!
//! The guest workspace (`guest-workflows/`) targets `wasm32-wasip2` and is excluded from the
//! root workspace, so it is built here with a nested cargo:
//!
//! ```text
//! cd guest-workflows && cargo build --release --target wasm32-wasip2 --workspace
//! ```
//!
//! The directory holding the `.wasm` files is exported to the crate as `AEGIS_FIXTURE_DIR`.
//! Set `AEGIS_SKIP_GUEST_BUILD=1` to skip the nested build (the fixtures are then expected to
//! be there already, and a test that needs a missing one panics with a clear message).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Variables that the outer cargo sets for this build script and that must not leak into the
/// nested build: they would redirect its target dir, change its flags or wrap its rustc.
const LEAKY_VARS: &[&str] = &[
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "RUSTC",
    "RUSTDOC",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_LINKER",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_MANIFEST_LINKS",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_CRATE_NAME",
    "OUT_DIR",
    "TARGET",
    "HOST",
    "PROFILE",
    "OPT_LEVEL",
    "DEBUG",
    "NUM_JOBS",
    "CARGO_PROFILE_RELEASE_DEBUG",
];

/// Prefixes of per-package variables set for build scripts.
const LEAKY_PREFIXES: &[&str] = &["CARGO_CFG_", "CARGO_FEATURE_", "CARGO_PKG_", "DEP_"];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("tests/ has a parent directory")
        .to_path_buf();
    let guests = root.join("guest-workflows");
    let fixture_dir = guests.join("target/wasm32-wasip2/release");

    println!("cargo:rerun-if-env-changed=AEGIS_SKIP_GUEST_BUILD");
    println!(
        "cargo:rustc-env=AEGIS_FIXTURE_DIR={}",
        fixture_dir.display()
    );
    emit_guest_sources(&guests);
    println!("cargo:rerun-if-changed={}", root.join("wit").display());

    if env::var_os("AEGIS_SKIP_GUEST_BUILD").is_some_and(|v| !v.is_empty() && v != "0") {
        println!(
            "cargo:warning=AEGIS_SKIP_GUEST_BUILD is set: not building the guest fixtures in {}",
            guests.display()
        );
        return;
    }

    let manifest = guests.join("Cargo.toml");
    if !manifest.is_file() {
        panic!(
            "the guest workspace is missing: expected {} (the fixtures the end-to-end tests run \
             are built from it). Set AEGIS_SKIP_GUEST_BUILD=1 to compile the tests without it.",
            manifest.display()
        );
    }

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(&guests)
        .arg("build")
        .arg("--release")
        .arg("--target")
        .arg("wasm32-wasip2")
        .arg("--workspace")
        .arg("--manifest-path")
        .arg(&manifest);
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if LEAKY_VARS.contains(&key) || LEAKY_PREFIXES.iter().any(|p| key.starts_with(p)) {
            cmd.env_remove(key);
        }
    }

    let status = cmd.status().unwrap_or_else(|e| {
        panic!(
            "could not run `{} build` for the guest workspace: {e}",
            Path::new(&cargo).display()
        )
    });
    if !status.success() {
        panic!(
            "building the guest fixtures failed ({status}): \
             `cd guest-workflows && cargo build --release --target wasm32-wasip2 --workspace`. \
             Is the target installed (`rustup target add wasm32-wasip2`, or `make toolchain`)?"
        );
    }
}

/// Asks cargo to re-run this script when a source of the guest workspace changes.
///
/// Cargo scans a named directory recursively, so the workspace root is never named itself:
/// its `target/` (which the nested build writes) would trigger a rebuild every time. Its
/// top-level files and source directories are named one by one instead.
fn emit_guest_sources(guests: &Path) {
    let Ok(entries) = std::fs::read_dir(guests) else {
        // Missing: a path that does not exist makes cargo re-run the script every time.
        println!("cargo:rerun-if-changed={}", guests.display());
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let hidden = name.starts_with('.') && name != ".cargo";
        if name == "target" || hidden {
            continue;
        }
        println!("cargo:rerun-if-changed={}", entry.path().display());
    }
}
